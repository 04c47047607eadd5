// Placement (CREATING and SCALING): every missing member placed in one pass
// and written in one transaction, create-if-absent, so that a second leader
// doing the same step cannot place a member twice; on a scale in, the type
// takes the leaving members out of the service first, then they go, and
// their DNS names with them.
import { memberKey, type MemberSpec } from '../../agent/members.ts';
import { DNS_PREFIX } from '../../agent/providers/embedded-dns.ts';
import { put, readMembers } from '../records.ts';
import { recordEvent } from '../../events/events.ts';
import type { ServicePass } from '../pass.ts';
import { moveOffDeadNodes } from './failover.ts';
import type { Reconciler } from './reconciler.ts';

/** The member records' deletes, with the members' names in the embedded DNS (a dead node's agent cannot take those away). */
export const memberDeletes = (members: MemberSpec[]) =>
  members.flatMap((m) => [
    { delete: { key: memberKey(m.service, m.name), prefix: false } },
    ...(m.dnsName ? [{ delete: { key: DNS_PREFIX + m.dnsName.toLowerCase(), prefix: false } }] : []),
  ]);

/** Up to `n` addresses of the pool that no member holds. */
function freeIps(s: ServicePass, n: number): string[] {
  const used = new Set(readMembers(s.env.db.store).map((m) => m.value.ip));
  return s.env.ipPool.filter((ip) => !used.has(ip)).slice(0, n);
}

export const placement: Reconciler = {
  name: 'Placement',
  // FAILED: an older release's dead end of this step; it is tried again like any stalled placement.
  during: ['CREATING', 'SCALING', 'FAILED'],
  async reconcile(s) {
    const { spec, type } = s;
    const needs = s.env.ipPool.length === 0 ? type.needsStaticIps(spec) : undefined;
    if (needs) return s.stall('NeedsStaticIps', needs).then(() => true);
    const stored = s.members();
    const have = new Map(stored.map((m) => [m.value.name, m]));
    const names = Array.from({ length: spec.replicas }, (_, i) => `${spec.name}-${i}`);
    // Scaling down: the highest indexes go (never member 0).
    const extra = stored.filter((m) => !names.includes(m.value.name));
    if (extra.length > 0) {
      // The type takes them out of the service first (a reconfig, moving data away), with every member running: one on a dead node moves as in ACTIVE.
      if (await moveOffDeadNodes(s, stored)) return true;
      const placed = s.placed(stored);
      const leaving = new Set(extra.map((m) => m.value.name));
      const waiting = await type.leave?.(
        spec,
        placed,
        placed.filter((m) => leaving.has(m.spec.name)),
        s.typeContext(),
      );
      if (waiting) return s.setStatus('SCALING', waiting).then(() => true);
      await s.env.db.txn({ compare: [], success: memberDeletes(extra.map((m) => m.value)), failure: [] });
      return true;
    }
    const missing = names.flatMap((n, i) => (have.has(n) ? [] : [i]));
    if (missing.length === 0) {
      const placedMsg = names.length === 1 ? 'the member is placed; waiting for it to run' : `${names.length} members placed; waiting for them to run`;
      return s.setStatus('INITIALIZING', placedMsg).then(() => true);
    }
    const ips = names.map((n) => have.get(n)?.value.ip);
    if (s.env.ipPool.length > 0) {
      const free = freeIps(s, missing.length);
      if (free.length < missing.length)
        return s
          .stall(
            'IPPoolExhausted',
            `the static IP pool is exhausted: ${missing.length} members need an address and ${free.length} ${free.length === 1 ? 'is' : 'are'} free; widen --ip-pool on the nodes, free addresses by deleting a service, or ask for fewer members ("firecampd service scale ${spec.name} N")`,
          )
          .then(() => true);
      missing.forEach((i, k) => (ips[i] = free[k]));
    }
    const specs = s.memberSpecs(ips);
    const chosen: MemberSpec[] = [];
    for (const i of missing) {
      const where = s.place(specs[i], i, new Set(), chosen);
      if ('why' in where) return s.stall('Unschedulable', where.why).then(() => true);
      const zone = s.env.zonal ? s.nodeZone(where.node) : undefined;
      chosen.push({ ...specs[i], node: where.node, epoch: 1, generation: s.svc.generation ?? 0, ...(zone ? { zone } : {}) });
    }
    const r = await s.env.db.txn({
      compare: chosen.map((m) => ({ key: memberKey(spec.name, m.name), target: 'exists' as const, op: '=' as const, value: false })),
      success: chosen.map((m) => put.member(m)),
      failure: [],
    });
    if (r.succeeded)
      for (const m of chosen)
        void recordEvent(s.env.db, s.env.log, { kind: 'placed', service: m.service, member: m.name, node: m.node, reason: 'a new member' });
    return true;
  },
};
