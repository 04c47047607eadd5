// Health: the member is reported running with its container, for the
// catalog, which waits on it; from then on the agent follows its health check
// on each pass (Agent.ensure).
import type { MemberStep } from './step.ts';

export const health: MemberStep = {
  name: 'health',
  async start(node, run) {
    await node.report(run.spec, 'running', undefined, run.container);
    return true;
  },
};
