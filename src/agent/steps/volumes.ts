// Volumes: the member's data volume and its journal, attached and mounted on
// this node for its holder (node and epoch: a volume refuses an older holder),
// each one's root given to the member's user.
import fs from 'node:fs';
import { ownerOf } from '../members.ts';
import type { MemberRun, MemberStep, NodeContext } from './step.ts';

/** Attach the member's volumes (also for a member kept across an agent restart, whose volumes its container still uses). */
export async function attachVolumes(node: NodeContext, run: MemberRun): Promise<void> {
  const { spec } = run;
  const holder = { node: node.nodeId, epoch: spec.epoch };
  await node.serialize(async () => {
    if (spec.volume) run.volumeDir = await node.volumes.attach(spec.volume, holder);
    if (spec.journal) run.journalDir = await node.volumes.attach(spec.journal, holder);
  });
  const owner = ownerOf(spec);
  if (owner) for (const dir of [run.volumeDir, run.journalDir]) if (dir) fs.chownSync(dir, owner.uid, owner.gid);
}

export const volumes: MemberStep = {
  name: 'volumes',
  async start(node, run) {
    await attachVolumes(node, run);
    return true;
  },
  async stop(node, { spec }) {
    if (spec.journal) await node.volumes.detach(spec.journal);
    if (spec.volume) await node.volumes.detach(spec.volume);
  },
};
