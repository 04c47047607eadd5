// Address: the member's static IP answers on this node, moved here from
// wherever it was; it stops answering here when the member stops.
import type { MemberStep } from './step.ts';

export const address: MemberStep = {
  name: 'address',
  async start(node, { spec }) {
    if (spec.ip) await node.ips.add(spec.ip);
    return true;
  },
  async stop(node, { spec }) {
    if (spec.ip) await node.ips.remove(spec.ip);
  },
};
