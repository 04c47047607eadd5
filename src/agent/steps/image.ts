// Image: the member's images (its own, and its metrics exporter's) are on this
// node's engine. If not, the member says "pulling image …" before the pull
// begins, so that nobody polling its status sees it starting with no reason,
// and the start waits (the agent is kicked when the pull ends); a failed pull
// throws its reason.
import type { MemberSpec } from '../members.ts';
import type { MemberStep } from './step.ts';

/** Every image the member runs. */
const imagesOf = (spec: MemberSpec): string[] => [spec.image, ...(spec.metrics?.exporter ? [spec.metrics.exporter.image] : [])];

export const image: MemberStep = {
  name: 'image',
  async start(node, { spec }) {
    for (const name of imagesOf(spec)) {
      const state = await node.containers.imageState(name);
      if (state.kind === 'failed') throw new Error(state.message);
      if (state.kind === 'present') continue;
      await node.report(spec, 'starting', `pulling image ${name}`);
      if (state.kind === 'absent') node.containers.startPull(name);
      return false;
    }
    await node.report(spec, 'starting');
    return true;
  },
};
