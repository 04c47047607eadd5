// DNS records for the embedded DNS server: kept in the controldb under
// /dns/, so that every node's server answers from its own replica.
import type { ControlDb } from '../../controldb/controldb.ts';
import type { DnsProvider } from './types.ts';

export const DNS_PREFIX = '/dns/';

export class EmbeddedDns implements DnsProvider {
  readonly kind = 'embedded' as const;

  constructor(private readonly db: ControlDb) {}

  async upsert(name: string, ip: string): Promise<void> {
    const key = DNS_PREFIX + name.toLowerCase();
    if (this.db.store.get(key)?.value === ip) return;
    await this.db.txn({ compare: [], success: [{ put: { key, value: ip } }], failure: [] });
  }

  async remove(name: string, ip: string): Promise<void> {
    const key = DNS_PREFIX + name.toLowerCase();
    const kv = this.db.store.get(key);
    if (kv?.value !== ip) return;
    // Compared on the revision read: a record another node rewrote meanwhile stays.
    await this.db.txn({
      compare: [{ key, target: 'mod_revision', op: '=', value: kv.mod_revision }],
      success: [{ delete: { key, prefix: false } }],
      failure: [],
    });
  }
}
