// Claim: the member is this node's to run at its current epoch. A claim is a
// compare-and-set on the member's assignment, riding on the node's lease, so
// it is taken only while no other node holds one; it goes with the stop (or
// with the lease, if the node dies).
import { readClaim } from '../../catalog/records.ts';
import { claimKey, memberKey, statusKey, type Claim } from '../members.ts';
import type { MemberStep } from './step.ts';

export const claim: MemberStep = {
  name: 'claim',
  async start(node, { spec }) {
    const mk = memberKey(spec.service, spec.name);
    const ck = claimKey(spec.service, spec.name);
    const assignment = node.db.store.get(mk);
    const current = node.db.store.get(ck);
    const held = readClaim(node.db.store, spec.service, spec.name)?.value;
    if (held && held.node !== node.nodeId) {
      node.log.debug({ member: `${spec.service}/${spec.name}`, holder: held.node }, 'waiting for the previous holder to release the member');
      return false;
    }
    if (held && held.epoch === spec.epoch && current!.lease === node.lease.leaseId) return true;
    if (!assignment) return false;
    const r = await node.db.txn({
      compare: [
        { key: mk, target: 'mod_revision', op: '=', value: assignment.mod_revision },
        current ? { key: ck, target: 'mod_revision', op: '=', value: current.mod_revision } : { key: ck, target: 'exists', op: '=', value: false },
      ],
      success: [{ put: { key: ck, value: JSON.stringify({ node: node.nodeId, epoch: spec.epoch } satisfies Claim), lease: node.lease.leaseId } }],
      failure: [],
    });
    return r.succeeded;
  },
  // Released only if it is still ours, with the member's status: the next holder may take it from now on.
  async stop(node, { spec }, mode) {
    if (!mode.online) return; // it goes with the lease
    const current = readClaim(node.db.store, spec.service, spec.name);
    if (!current || current.value.node !== node.nodeId) return;
    await node.db.txn({
      compare: [{ key: current.key, target: 'mod_revision', op: '=', value: current.rev }],
      success: [{ delete: { key: current.key, prefix: false } }, { delete: { key: statusKey(spec.service, spec.name), prefix: false } }],
      failure: [],
    });
  },
};
