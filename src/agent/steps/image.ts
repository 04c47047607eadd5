// Image: the member's image is on this node's engine. If not, the member
// says "pulling image …" before the pull begins, so that nobody polling its
// status sees it starting with no reason, and the start waits (the agent is
// kicked when the pull ends); a failed pull throws its reason.
import type { MemberStep } from './step.ts';

export const image: MemberStep = {
  name: 'image',
  async start(node, { spec }) {
    const state = await node.containers.imageState(spec.image);
    if (state.kind === 'failed') throw new Error(state.message);
    if (state.kind === 'present') {
      await node.report(spec, 'starting');
      return true;
    }
    await node.report(spec, 'starting', `pulling image ${spec.image}`);
    if (state.kind === 'absent') node.containers.startPull(spec.image);
    return false;
  },
};
