// Failover: members of a node whose lease expired go elsewhere at the next
// epoch, once the grace is over. The old node's claims went with its lease,
// and its agent stopped the members a fence margin before the lease could
// expire, so the new node never runs a member beside the old one.
import { memberIndex } from '../../agent/members.ts';
import { recordEvent } from '../../events/events.ts';
import type { ServicePass, StoredMember } from '../pass.ts';
import { RUNNING, type Reconciler } from './reconciler.ts';

/** Move the members of `have` whose node's lease is gone (for the grace at least). True if one moved. */
export async function moveOffDeadNodes(s: ServicePass, have: StoredMember[]): Promise<boolean> {
  const now = Date.now();
  let moved = false;
  for (const { value: m, rev, key, raw } of have) {
    if (m.stopped) continue;
    if (s.alive(m.node)) {
      s.env.goneSince.delete(m.node);
      continue;
    }
    const since = s.env.goneSince.get(m.node) ?? now;
    s.env.goneSince.set(m.node, since);
    if (now - since < s.env.graceMs) continue;
    const where = s.place(m, memberIndex(m), new Set([m.node]));
    if ('why' in where) {
      s.env.log.warn({ member: m.name, why: where.why }, 'cannot move a member off a node whose lease expired');
      s.verdicts.notServing = `${m.name} cannot move off node ${m.node}, whose lease expired: ${where.why}`;
      continue;
    }
    if (
      await s.putMember(
        { value: m, rev, key, raw },
        { ...m, node: where.node, epoch: m.epoch + 1, moves: (m.moves ?? 0) + 1, movedAt: new Date().toISOString() },
      )
    ) {
      moved = true;
      s.env.log.warn({ member: m.name, from: m.node, to: where.node, epoch: m.epoch + 1 }, 'moved a member off a node whose lease expired');
      void recordEvent(s.env.db, s.env.log, {
        kind: 'moved',
        service: m.service,
        member: m.name,
        node: where.node,
        reason: `off node ${m.node}, whose lease expired (epoch ${m.epoch + 1})`,
      });
    }
  }
  return moved;
}

export const failover: Reconciler = {
  name: 'Failover',
  during: RUNNING,
  reconcile: (s) => moveOffDeadNodes(s, s.members()),
};
