// Upkeep (ACTIVE, and during a rollout): the type's care of a running
// service (PostgreSQL: a replication slot per standby) and each member's role
// and lag for `service get`, looked at every few seconds. Not a step that
// holds anything up: a member that does not answer now (its node just died)
// is looked at again next pass, and says nothing in the service's message.
import { errorMessage } from '../../errors.ts';
import type { ServicePass } from '../pass.ts';
import { put, readRoles } from '../records.ts';
import type { PlacedMember, TypeContext } from '../types.ts';
import type { Reconciler } from './reconciler.ts';

/** How often each service's roles are looked at. */
const rolesEveryMs = () => 3000;

export async function upkeep(s: ServicePass, placed: PlacedMember[], ctx: TypeContext): Promise<void> {
  try {
    await s.type.maintain?.(s.spec, placed, ctx);
  } catch (err) {
    s.env.log.debug({ service: s.name, err: errorMessage(err) }, 'upkeep failed; will retry');
  }
  if (!s.type.roles || Date.now() - (s.env.rolesAt.get(s.name) ?? 0) < rolesEveryMs()) return;
  s.env.rolesAt.set(s.name, Date.now());
  try {
    const roles = await s.type.roles(s.spec, placed, ctx);
    if (JSON.stringify(readRoles(s.env.db.store, s.name)) !== JSON.stringify(roles))
      await s.env.db.txn({ compare: [], success: [put.roles(s.name, roles)], failure: [] });
  } catch (err) {
    s.env.log.debug({ service: s.name, err: errorMessage(err) }, "could not look at the members' roles; will retry");
  }
}

/** An ACTIVE service's members that do not serve now, named with why; undefined when every one does. */
export function notServing(s: ServicePass): string | undefined {
  const have = s.members().map((m) => m.value);
  const out = have.filter((m) => !m.stopped && !s.running(m)).map((m) => `${m.name} ${s.status(m)?.state ?? 'pending'} on node ${m.node}`);
  if (have.length < s.spec.replicas) out.push(`${s.spec.replicas - have.length} of ${s.spec.replicas} members not placed`);
  return out.length > 0 ? out.join('; ') : undefined;
}

export const upkeepReconciler: Reconciler = {
  name: 'Upkeep',
  during: ['ACTIVE'],
  async reconcile(s) {
    s.verdicts.notServing ??= notServing(s);
    await upkeep(s, s.placed(s.members()), s.typeContext());
    return true;
  },
};
