// Name: the member's DNS name points at its address here. It is removed when
// the member is gone for good (its service deleted, or scaled in), and only
// while it still points here; a member that moves, restarts or is stopped
// keeps its name (the next holder points it at itself).
import { memberKey } from '../members.ts';
import type { MemberSpec } from '../members.ts';
import type { MemberStep, NodeContext } from './step.ts';

const addressOf = (node: NodeContext, spec: MemberSpec) => spec.ip ?? node.nodeIp;

export const name: MemberStep = {
  name: 'name',
  async start(node, { spec }) {
    if (spec.dnsName) await node.dns.upsert(spec.dnsName, addressOf(node, spec));
    return true;
  },
  async stop(node, { spec }, mode) {
    // Offline, whether the member is gone cannot be known: the catalog removes a gone member's embedded record itself.
    if (!spec.dnsName || !mode.online || node.db.store.get(memberKey(spec.service, spec.name))) return;
    await node.dns.remove(spec.dnsName, addressOf(node, spec));
  },
};
