// Firewall: before the member's address answers here, the node's firewall
// walls its service (only the cluster's nodes, the service's members and its
// access list get through); after the member has stopped here, its wall goes
// with it unless the member is assigned here again.
import type { MemberStep } from './step.ts';

export const firewall: MemberStep = {
  name: 'firewall',
  async start(node, { spec }) {
    await node.firewall?.guard(spec);
    return true;
  },
  async stop(node, { spec }) {
    await node.firewall?.release(spec);
  },
};
