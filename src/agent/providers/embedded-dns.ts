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

  async remove(name: string): Promise<void> {
    await this.db.txn({ compare: [], success: [{ delete: { key: DNS_PREFIX + name.toLowerCase(), prefix: false } }], failure: [] });
  }
}
