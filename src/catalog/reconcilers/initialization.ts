// Initialization (INITIALIZING): once every member runs and passes its
// health check, the type's initialization the first time (forming a Redis
// cluster), its join after a scale out or a start after a stop, and its
// rebalance after a scale out that asked for one; for a service restored
// from a backup, what the backup holds beyond the members' volumes (the
// type's apply: Kafka's topics); then ACTIVE.
import { readRestoredPart } from '../../backup/read-part.ts';
import type { ServicePass } from '../pass.ts';
import type { Reconciler } from './reconciler.ts';

export const initialization: Reconciler = {
  name: 'Initialization',
  during: ['INITIALIZING'],
  async reconcile(s) {
    const have = s.members();
    // A start after a stop: the members run again, at a new epoch.
    const stopped = have.filter((m) => m.value.stopped);
    if (stopped.length > 0) {
      for (const m of stopped) {
        const { stopped: _, ...spec } = m.value;
        await s.putMember(m, { ...spec, epoch: m.value.epoch + 1 });
      }
      return true;
    }
    const running = have.filter((m) => s.running(m.value)).length;
    if (running < have.length) return s.setStatus('INITIALIZING', `${running}/${have.length} members running and healthy${heldUp(s)}`).then(() => true);
    const { type, spec } = s;
    const placed = s.placed(have);
    const waiting = !s.svc.initialized
      ? ((await type.initialize(spec, placed, s.typeContext())) ?? (await applyRestored(s)))
      : ((await type.join?.(spec, placed, s.typeContext())) ?? (s.svc.rebalance ? await type.rebalance?.(spec, placed, s.typeContext()) : undefined));
    if (waiting) return s.setStatus('INITIALIZING', waiting).then(() => true);
    await s.setStatus('ACTIVE', `${running}/${have.length} members running`, { initialized: true, rebalance: undefined });
    return true;
  },
};

/** A restored service's last step of its first initialization: what the backup holds that no member reads from its volume, put back through the service's API. */
async function applyRestored(s: ServicePass): Promise<string | undefined> {
  const from = s.spec.restore;
  const backup = s.type.backup;
  if (!from || !backup?.apply) return undefined;
  return backup.apply(s.spec, s.placed(s.members()), s.typeContext(), (name) => readRestoredPart(s.env.db, from, name));
}

/** What holds up a member (its image being pulled, a failure: a missing image, a volume that will not mount), as "; <member> <state>: <why>". */
function heldUp(s: ServicePass): string {
  for (const { value: m } of s.members()) {
    const st = s.status(m);
    if (st && st.state !== 'running' && st.message) return `; ${m.name} ${st.state}: ${st.message}`;
  }
  return '';
}
