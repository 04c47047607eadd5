// Logs: the member's output is kept on its own volume from the moment the
// volume is here (the node's log keeper attaches to the container once it
// runs), so that its log moves with it; stopped here after its container
// stopped (this step comes before the container's, so its stop comes after),
// and before its volume goes.
import type { MemberStep } from './step.ts';

export const logs: MemberStep = {
  name: 'logs',
  start(node, run) {
    if (node.logs && run.volumeDir) node.logs.open(run.spec, run.volumeDir);
    return Promise.resolve(true);
  },
  async stop(node, { spec }, mode) {
    await node.logs?.close(spec, mode.why);
  },
};
