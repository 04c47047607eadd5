// The catalog: runs on the Raft leader only, started and stopped with
// leadership. Every step it takes is one compare-and-set on the controldb,
// and every decision is made again from the store on each pass, so a new
// leader carries on an operation the old one started without doubling or
// losing a step.
//
//   CREATING      members are written (placed, epoch 1) one by one
//   INITIALIZING  waiting for every member to report running
//   ACTIVE        members whose node's lease expired are moved (epoch + 1)
//   SCALING       members beyond the new count removed, missing ones placed
//   DELETING      members removed; the record goes once no node holds one
import type { ControlDb } from '../controldb/controldb.ts';
import { NODES_PREFIX, type NodeRecord } from '../controldb/membership.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ALIVE_PREFIX, CLAIMS_PREFIX, MEMBERS_PREFIX, STATUS_PREFIX, memberKey, memberSpecSchema, type MemberSpec, type MemberStatus } from '../agent/members.ts';
import { redis } from './redis.ts';
import { SERVICES_PREFIX, serviceKey, type Service, type ServiceSpec, type ServiceType } from './types.ts';

export const SERVICE_TYPES: Record<ServiceSpec['type'], ServiceType> = { redis };

export interface CatalogOptions {
  db: ControlDb;
  domain: string;
  /** Static IPs for members, in order (empty: members are reached at their node's address). */
  ipPool: string[];
  log: Logger;
  /** How long after a node's lease is gone its members are moved (on top of the lease TTL). */
  graceMs?: number;
}

export class Catalog {
  private timer?: NodeJS.Timeout;
  private busy = false;
  /** When this leader first saw each node without its lease. */
  private readonly goneSince = new Map<string, number>();

  constructor(private readonly o: CatalogOptions) {}

  leadershipChanged(isLeader: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.goneSince.clear();
    if (!isLeader) return;
    this.timer = setInterval(() => void this.pass(), 500);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const kv of this.o.db.store.range({ key: SERVICES_PREFIX, prefix: true, limit: 0 }).kvs) {
        const svc = JSON.parse(kv.value) as Service;
        try {
          await this.step(svc, kv.mod_revision);
        } catch (err) {
          this.o.log.warn({ service: svc.spec.name, err: errorMessage(err) }, 'catalog step failed; will retry');
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private members(service: string): { spec: MemberSpec; rev: number }[] {
    return this.o.db.store
      .range({ key: `${MEMBERS_PREFIX}${service}/`, prefix: true, limit: 0 })
      .kvs.map((kv) => ({ spec: memberSpecSchema.parse(JSON.parse(kv.value)), rev: kv.mod_revision }));
  }

  private liveNodes(): PlacementNodeWithLoad[] {
    const load = new Map<string, number>();
    for (const kv of this.o.db.store.range({ key: MEMBERS_PREFIX, prefix: true, limit: 0 }).kvs) {
      const node = (JSON.parse(kv.value) as MemberSpec).node;
      load.set(node, (load.get(node) ?? 0) + 1);
    }
    return this.o.db.store
      .range({ key: NODES_PREFIX, prefix: true, limit: 0 })
      .kvs.map((kv) => JSON.parse(kv.value) as NodeRecord)
      .filter((n) => this.o.db.store.get(ALIVE_PREFIX + n.id) !== undefined)
      .map((n) => ({ ...n, load: load.get(n.id) ?? 0 }));
  }

  /**
   * A node for a member: not one already running a member of the service if
   * avoidable, in a zone the service uses least, then the least loaded node.
   */
  private place(service: string, exclude: Set<string>): string | undefined {
    const siblings = this.members(service).map((m) => m.spec.node);
    const nodes = this.liveNodes().filter((n) => !exclude.has(n.id));
    const zoneUse = (zone: string) => nodes.filter((n) => n.zone === zone && siblings.includes(n.id)).length;
    nodes.sort(
      (a, b) =>
        Number(siblings.includes(a.id)) - Number(siblings.includes(b.id)) || zoneUse(a.zone) - zoneUse(b.zone) || a.load - b.load || a.id.localeCompare(b.id),
    );
    return nodes[0]?.id;
  }

  private async setStatus(svc: Service, rev: number, status: Service['status'], message: string): Promise<void> {
    if (svc.status === status && svc.message === message) return;
    const next: Service = { ...svc, status, message, updated_at: new Date().toISOString() };
    await this.o.db.txn({
      compare: [{ key: serviceKey(svc.spec.name), target: 'mod_revision', op: '=', value: rev }],
      success: [{ put: { key: serviceKey(svc.spec.name), value: JSON.stringify(next) } }],
      failure: [],
    });
    this.o.log.info({ service: svc.spec.name, status, message }, 'service status');
  }

  private async step(svc: Service, rev: number): Promise<void> {
    const name = svc.spec.name;
    if (svc.status === 'DELETING') return this.deleting(svc, rev);
    if (svc.status === 'FAILED') return;
    const type = SERVICE_TYPES[svc.spec.type];
    const have = new Map(this.members(name).map((m) => [m.spec.name, m]));
    const names = Array.from({ length: svc.spec.replicas }, (_, i) => `${name}-${i}`);
    const ips = names.map((n) => have.get(n)?.spec.ip);
    if (svc.status === 'SCALING') {
      // Down: the highest indexes go first (never the primary); up: as in CREATING.
      const extra = [...have.keys()].filter((n) => !names.includes(n));
      if (extra.length > 0) {
        await this.o.db.txn({ compare: [], success: extra.map((n) => ({ delete: { key: memberKey(name, n), prefix: false } })), failure: [] });
        return;
      }
    }
    if (svc.status === 'CREATING' || svc.status === 'SCALING') {
      // One member per pass, in order: the primary first, so that the others know its address.
      const i = names.findIndex((n) => !have.has(n));
      if (i < 0) return this.setStatus(svc, rev, 'INITIALIZING', `${names.length} members placed; waiting for them to run`);
      const node = this.place(name, new Set());
      if (!node) return this.setStatus(svc, rev, 'CREATING', `no live node to place ${names[i]} on; waiting for one`);
      if (this.o.ipPool.length > 0) {
        ips[i] = this.freeIp();
        if (!ips[i]) return this.setStatus(svc, rev, 'FAILED', 'the static IP pool is exhausted: widen --ip-pool');
      }
      const spec: MemberSpec = { ...type.members(svc.spec, { domain: this.o.domain, ips })[i]!, node, epoch: 1 };
      // Create-if-absent: a second leader doing the same step cannot place a member twice.
      await this.o.db.txn({
        compare: [{ key: memberKey(name, names[i]!), target: 'exists', op: '=', value: false }],
        success: [{ put: { key: memberKey(name, names[i]!), value: JSON.stringify(spec) } }],
        failure: [],
      });
      return;
    }
    // Move the members of nodes whose lease has expired.
    const now = Date.now();
    for (const { spec, rev: mrev } of have.values()) {
      if (this.o.db.store.get(ALIVE_PREFIX + spec.node)) {
        this.goneSince.delete(spec.node);
        continue;
      }
      const since = this.goneSince.get(spec.node) ?? now;
      this.goneSince.set(spec.node, since);
      if (now - since < (this.o.graceMs ?? 1000)) continue;
      const node = this.place(name, new Set([spec.node]));
      if (!node) continue;
      await this.o.db.txn({
        compare: [{ key: memberKey(name, spec.name), target: 'mod_revision', op: '=', value: mrev }],
        success: [{ put: { key: memberKey(name, spec.name), value: JSON.stringify({ ...spec, node, epoch: spec.epoch + 1 }) } }],
        failure: [],
      });
      this.o.log.warn({ member: spec.name, from: spec.node, to: node, epoch: spec.epoch + 1 }, "moved a member off a node whose lease expired");
    }
    const running = [...have.values()].filter((m) => this.status(name, m.spec.name)?.state === 'running' && this.status(name, m.spec.name)?.epoch === m.spec.epoch).length;
    if (svc.status === 'INITIALIZING' && running === names.length) return this.setStatus(svc, rev, 'ACTIVE', `${running}/${names.length} members running`);
  }

  private status(service: string, member: string): MemberStatus | undefined {
    const kv = this.o.db.store.get(`${STATUS_PREFIX}${service}/${member}`);
    return kv ? (JSON.parse(kv.value) as MemberStatus) : undefined;
  }

  private freeIp(): string | undefined {
    const used = new Set(this.o.db.store.range({ key: MEMBERS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => (JSON.parse(kv.value) as MemberSpec).ip));
    return this.o.ipPool.find((ip) => !used.has(ip));
  }

  private async deleting(svc: Service, rev: number): Promise<void> {
    const name = svc.spec.name;
    if (this.members(name).length > 0) {
      await this.o.db.txn({ compare: [], success: [{ delete: { key: `${MEMBERS_PREFIX}${name}/`, prefix: true } }], failure: [] });
      return;
    }
    // Agents release their claims once their containers are gone.
    if (this.o.db.store.range({ key: `${CLAIMS_PREFIX}${name}/`, prefix: true, limit: 1 }).kvs.length > 0) return;
    await this.o.db.txn({
      compare: [{ key: serviceKey(name), target: 'mod_revision', op: '=', value: rev }],
      success: [{ delete: { key: serviceKey(name), prefix: false } }],
      failure: [],
    });
    this.o.log.info({ service: name }, 'service deleted');
  }
}

interface PlacementNodeWithLoad extends NodeRecord {
  load: number;
}
