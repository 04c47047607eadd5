// Aliases: the type's DNS names that follow one member (primary.<service>)
// point at that member's current address.
import { DNS_PREFIX } from '../../agent/providers/embedded-dns.ts';
import type { ServicePass } from '../pass.ts';
import type { PlacedMember, Service } from '../types.ts';
import { serviceType } from '../registry.ts';
import { RUNNING, type Reconciler } from './reconciler.ts';

/** The writes that would point the service's aliases at their members' addresses; none for those that do already. */
export function aliasPuts(s: ServicePass, svc: Service, placed: PlacedMember[]): { put: { key: string; value: string } }[] {
  return (serviceType(svc.spec.type).aliases?.(svc.spec, svc.state ?? {}, s.env.domain) ?? []).flatMap(({ name, member }) => {
    const host = placed.find((m) => m.spec.name === member)?.host;
    const key = DNS_PREFIX + name.toLowerCase();
    return host && s.env.db.store.get(key)?.value !== host ? [{ put: { key, value: host } }] : [];
  });
}

/** The keys of the service's aliases, for its teardown. */
export function aliasKeys(s: ServicePass): string[] {
  return (s.type.aliases?.(s.spec, s.svc.state ?? {}, s.env.domain) ?? []).map((a) => DNS_PREFIX + a.name.toLowerCase());
}

export const aliases: Reconciler = {
  name: 'Aliases',
  during: RUNNING,
  async reconcile(s) {
    const puts = aliasPuts(s, s.svc, s.placed(s.members()));
    if (puts.length === 0) return false;
    await s.env.db.txn({ compare: [], success: puts, failure: [] });
    s.env.log.info(
      { service: s.name, aliases: puts.map((p) => `${p.put.key.slice(DNS_PREFIX.length)} → ${p.put.value}`) },
      'DNS aliases point at their members',
    );
    return false;
  },
};
