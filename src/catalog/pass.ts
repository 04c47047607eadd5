// One service as the catalog's reconcilers see it on one pass: its record and
// the revision a write of it compares, fresh reads of its members and their
// state, and the writes every reconciler makes the same way. Nothing here is
// kept from one pass to the next but what CatalogEnv holds on purpose.
import { readClusterCa } from '../security/tokens.ts';
import { parseHostPort } from '../config.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { recordEvent } from '../events/events.ts';
import type { Logger } from '../log.ts';
import { ALIVE_PREFIX, claimKey, memberIndex, memberKey, type MemberSpec, type MemberStatus } from '../agent/members.ts';
import { conditionsFor, sameConditions, type Verdicts } from './conditions.ts';
import type { MemberExec } from './member-exec.ts';
import { place, type NodeInfo, type PlacedMember as Placed } from './placement.ts';
import { placedMembers, put, readMembers, readNodes, readSecrets, readStatus, type Stored } from './records.ts';
import { neededSpecs, readService } from './service-records.ts';
import { serviceType } from './registry.ts';
import {
  serviceKey,
  type MemberContext,
  type PlacedMember,
  type Service,
  type ServiceSpec,
  type ServiceStatus,
  type ServiceType,
  type TypeContext,
} from './types.ts';

/** What the catalog runs with, and the little it remembers between passes (as a leader only; a new one starts afresh). */
export interface CatalogEnv {
  db: ControlDb;
  domain: string;
  /** Static IPs for members, in order (empty: members are reached at their node's address). */
  ipPool: string[];
  /** Members stay in the zone they were first placed in (EBS volumes, AWS addresses). */
  zonal: boolean;
  log: Logger;
  /** How long after a node's lease is gone its members are moved (see CatalogOptions.graceMs). */
  graceMs: number;
  exec: MemberExec;
  /** When this leader first saw each node without its lease. */
  goneSince: Map<string, number>;
  /** When each service's roles were last looked at. */
  rolesAt: Map<string, number>;
}

export type StoredMember = Stored<MemberSpec>;

export class ServicePass {
  /** What this pass found that the service's conditions report: set by reconcilers, written with the record. */
  readonly verdicts: Verdicts = {};
  /** The record was written on this pass (a reconciler that wrote it ends the service's pass: the next one reads it anew). */
  wrote = false;

  constructor(
    readonly env: CatalogEnv,
    readonly svc: Service,
    readonly rev: number,
  ) {}

  get spec(): ServiceSpec {
    return this.svc.spec;
  }
  get type(): ServiceType {
    return serviceType(this.svc.spec.type);
  }
  get name(): string {
    return this.svc.spec.name;
  }

  members(): StoredMember[] {
    return readMembers(this.env.db.store, this.name);
  }

  placed(have: StoredMember[]): PlacedMember[] {
    return placedMembers(
      this.env.db.store,
      have.map((m) => m.value),
    );
  }

  alive(node: string): boolean {
    return this.env.db.store.get(ALIVE_PREFIX + node) !== undefined;
  }

  nodeZone(node: string): string | undefined {
    return readNodes(this.env.db.store).find((n) => n.id === node)?.zone;
  }

  /** What the member's agent last reported of its current assignment. */
  status(m: MemberSpec): MemberStatus | undefined {
    const st = readStatus(this.env.db.store, m.service, m.name);
    return st && st.epoch === m.epoch && st.node === m.node ? st : undefined;
  }

  /** The member runs its current assignment, as its agent reported, and passes its health check if it has one. */
  running(m: MemberSpec): boolean {
    const st = this.status(m);
    return st?.state === 'running' && (!m.healthCheck || st.health === 'healthy');
  }

  /** What a type's steps are given: its state and the service's secrets, read from this leader's store. */
  typeContext(): TypeContext {
    return {
      state: this.svc.state ?? {},
      secrets: readSecrets(this.env.db.store, this.name)?.value ?? {},
      log: this.env.log,
      released: (member) => this.env.db.store.get(claimKey(this.name, member)) === undefined,
      exec: this.env.exec,
      lookup: (name) => this.placed(this.members()).find((m) => m.spec.dnsName === name)?.host,
      ca: readClusterCa(this.env.db.store)?.certPem,
    };
  }

  memberContext(ips: (string | undefined)[], state = this.svc.state ?? {}): MemberContext {
    const nodeAddrs = readNodes(this.env.db.store).map((n) => parseHostPort(n.addr, 0, 'node address', true).host);
    return { domain: this.env.domain, ips, state, nodeAddrs, needed: neededSpecs(this.env.db.store, this.spec) };
  }

  /** The members' specs (without node and epoch) as the type makes them, each with what it restores from, for a restored service. */
  memberSpecs(ips: (string | undefined)[], state = this.svc.state ?? {}): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const logging = this.spec.logDriver ? { logging: { driver: this.spec.logDriver, ...(this.spec.logOpts ? { options: this.spec.logOpts } : {}) } } : {};
    const specs = this.type.members(this.spec, this.memberContext(ips, state)).map((m) => ({ ...m, ...logging }));
    const from = this.spec.restore;
    if (!from || !this.type.backup) return specs;
    return specs.map((m, i) => {
      const r = this.type.backup!.restore(this.spec, i);
      if (!r) return m;
      const parts = r.parts.map((p) => {
        const part = from.parts.find((x) => x.index === p.index && x.name === p.name);
        if (!part) throw new Error(`backup ${from.backup} has no part ${p.name} of member ${p.index} for ${m.name}`);
        return { name: `${p.index}.${p.name}`, key: part.key, sha256: part.sha256, path: p.path, ...(p.unpack ? { unpack: p.unpack } : {}) };
      });
      const archive = r.archive && from.archive ? { archive: { path: r.archive.path, objects: from.archive } } : {};
      return { ...m, restore: { backup: from.backup, target: from.target, keyId: from.keyId, parts, files: r.files, ...archive } };
    });
  }

  /** A node for member `index`, or why there is none; `pending`: members chosen in this pass but not written yet. */
  place(member: Omit<MemberSpec, 'node' | 'epoch'>, index: number, exclude = new Set<string>(), pending: MemberSpec[] = []) {
    const store = this.env.db.store;
    const nodes: NodeInfo[] = readNodes(store).map((n) => ({
      id: n.id,
      name: n.name,
      zone: n.zone,
      labels: n.labels ?? {},
      live: this.alive(n.id),
      ...(n.capacity ? { capacity: n.capacity } : {}),
    }));
    const placed: Placed[] = [];
    for (const m of [...readMembers(store).map((s) => s.value), ...pending]) {
      if (m.stopped) continue;
      const svc = m.service === this.name ? this.spec : readService(store, m.service)?.value.spec;
      placed.push({
        name: m.name,
        node: m.node,
        service: m.service,
        group: svc ? serviceType(svc.type).group(svc, memberIndex(m)) : -1,
        ...pick(m),
      });
    }
    const wanted = {
      name: member.name,
      service: this.name,
      group: this.type.group(this.spec, index),
      labels: this.spec.placement?.labels,
      ...(member.zone ? { zone: member.zone } : {}),
      ...pick(member),
    };
    return place(wanted, nodes, placed, exclude);
  }

  /** Move the service to `status` with `message` (and its conditions), if nobody changed the record since this pass read it. */
  async setStatus(status: ServiceStatus, message: string, patch: Partial<Service> = {}): Promise<void> {
    const next: Service = { ...this.svc, ...patch, status, message };
    const conditions = conditionsFor(next, this.svc.conditions, this.verdicts, new Date().toISOString());
    if (this.svc.status === status && this.svc.message === message && Object.keys(patch).length === 0 && sameConditions(this.svc.conditions, conditions))
      return;
    await this.write({ ...next, conditions, updated_at: new Date().toISOString() });
    if (this.svc.status !== status || this.svc.message !== message) this.env.log.info({ service: this.name, status, message }, 'service status');
    if (this.svc.status !== status) void recordEvent(this.env.db, this.env.log, { kind: 'status', service: this.name, reason: `${status}: ${message}` });
  }

  /** The service's conditions as this pass found them, written only if they changed. */
  settle(): Promise<void> {
    return this.wrote ? Promise.resolve() : this.setStatus(this.svc.status, this.svc.message);
  }

  /** The catalog cannot go on without a change by the user: say which in the message and the Stalled condition; the step is tried again each pass. */
  stall(reason: string, message: string): Promise<void> {
    this.verdicts.stalled = { reason, message };
    return this.setStatus(this.svc.status, message);
  }

  private async write(next: Service): Promise<void> {
    this.wrote = true;
    await this.env.db.txn({
      compare: [{ key: serviceKey(this.name), target: 'mod_revision', op: '=', value: this.rev }],
      success: [put.service(next)],
      failure: [],
    });
  }

  /** Rewrite one member's assignment, only if nobody changed it since it was read. */
  async putMember(m: StoredMember, next: MemberSpec): Promise<boolean> {
    const key = memberKey(next.service, next.name);
    const r = await this.env.db.txn({ compare: [{ key, target: 'mod_revision', op: '=', value: m.rev }], success: [put.member(next)], failure: [] });
    return r.succeeded;
  }
}

/** What placement needs to know of a member. */
function pick(m: Pick<MemberSpec, 'ip' | 'port' | 'resources'>) {
  return {
    ...(m.ip ? { ip: m.ip } : {}),
    ...(m.port ? { port: m.port } : {}),
    ...(m.resources?.cpus ? { cpus: m.resources.cpus } : {}),
    ...(m.resources?.memoryMiB ? { memoryMiB: m.resources.memoryMiB } : {}),
  };
}
