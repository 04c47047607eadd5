// The steps of a member's life, in the order a start runs them; a stop runs
// them the other way. Later concerns (metrics, logs) each add one here.
import { address } from './address.ts';
import { certificate } from './certificate.ts';
import { claim } from './claim.ts';
import { container } from './container.ts';
import { files } from './files.ts';
import { firewall } from './firewall.ts';
import { health } from './health.ts';
import { image } from './image.ts';
import { logs } from './logs.ts';
import { metrics } from './metrics.ts';
import { name } from './name.ts';
import { restore } from './restore.ts';
import type { MemberRun, MemberStep, NodeContext, StopMode } from './step.ts';
import { volumes } from './volumes.ts';

export const MEMBER_STEPS: readonly MemberStep[] = [
  claim,
  image,
  volumes,
  logs,
  restore,
  firewall,
  address,
  name,
  files,
  certificate,
  container,
  metrics,
  health,
];

/** A step that failed, named: the member's status says which. */
export class StepError extends Error {
  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(`${step} step: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Run the steps forward. True once the member runs; false when a step said not now (it starts again on a later pass). */
export async function startMember(node: NodeContext, run: MemberRun, steps = MEMBER_STEPS): Promise<boolean> {
  for (const step of steps) {
    let done: boolean;
    try {
      done = await step.start(node, run);
    } catch (err) {
      throw new StepError(step.name, err);
    }
    if (!done) return false;
  }
  return true;
}

/**
 * Run the steps backward. Online, the first failure stops the stop (the member stays the agent's, and the stop is
 * tried again); offline, every step is tried and failures are logged: what is on the node goes as far as it can.
 */
export async function stopMember(node: NodeContext, run: MemberRun, mode: StopMode, steps = MEMBER_STEPS): Promise<void> {
  for (const step of [...steps].reverse()) {
    if (!step.stop) continue;
    try {
      await step.stop(node, run, mode);
    } catch (err) {
      if (mode.online) throw new StepError(step.name, err);
      node.log.warn({ member: `${run.spec.service}/${run.spec.name}`, step: step.name, err: (err as Error).message }, 'could not undo a step while fenced');
    }
  }
}
