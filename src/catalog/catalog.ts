// The catalog: runs on the Raft leader only, started and stopped with
// leadership. Every step it takes is one compare-and-set on the controldb,
// and every decision is made again from the store on each pass, so a new
// leader carries on an operation the old one started without doubling or
// losing a step.
//
//   CREATING      members are placed and written (epoch 1), all in one step
//   INITIALIZING  waiting for every member to run, then the type's
//                 initialization (forming a Redis cluster) once
//   ACTIVE        members whose node's lease expired are moved (epoch + 1)
//   SCALING       members beyond the new count removed, missing ones placed
//   UPGRADING     one member at a time restarts on the new image (RESTARTING:
//   RESTARTING    with its config made anew), in the type's order, each once
//                 every member serves
//   STOPPING      members marked stopped; STOPPED once no node holds one
//   DELETING      members removed; the record goes once no node holds one
import { parseHostPort } from '../config.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { NODES_PREFIX, type NodeRecord } from '../controldb/membership.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  ALIVE_PREFIX,
  CLAIMS_PREFIX,
  MEMBERS_PREFIX,
  STATUS_PREFIX,
  memberIndex,
  memberKey,
  memberSpecSchema,
  serviceSecretsKey,
  type MemberSpec,
  type MemberStatus,
} from '../agent/members.ts';
import { DNS_PREFIX } from '../agent/providers/embedded-dns.ts';
import type { MemberExec } from './member-exec.ts';
import { place, type NodeInfo, type PlacedMember as Placed } from './placement.ts';
import { SERVICE_TYPES } from './registry.ts';
import {
  ROLES_PREFIX,
  SERVICES_PREFIX,
  serviceKey,
  type MemberContext,
  type NeedKind,
  type PlacedMember,
  type Service,
  type ServiceSpec,
  type TypeContext,
} from './types.ts';

export interface CatalogOptions {
  db: ControlDb;
  domain: string;
  /** Static IPs for members, in order (empty: members are reached at their node's address). */
  ipPool: string[];
  /** Members stay in the zone they were first placed in (EBS volumes, AWS addresses). */
  zonal?: boolean;
  log: Logger;
  /**
   * How long after a node's lease is gone its members are moved (default
   * 100 ms). Safety does not rest on it alone: the old node's claims went
   * with its lease, and its agent stopped the members a fence margin (an
   * eighth of the TTL) before the lease could expire. It widens that margin
   * a little and gives a node that was slow, not dead, a moment to take a
   * new lease.
   */
  graceMs?: number;
  /** Runs a program in a member's container, wherever it runs (the types' tools: reconfig, nodetool…). */
  exec: MemberExec;
}

interface StoredMember {
  spec: MemberSpec;
  rev: number;
}

/** Where each member is reached: its static IP, else the address of the node that runs it (members share their host's network). */
export function placedMembers(db: ControlDb, specs: MemberSpec[]): PlacedMember[] {
  const nodes = db.store.range({ key: NODES_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => JSON.parse(kv.value) as NodeRecord);
  const addr = new Map(nodes.map((n) => [n.id, parseHostPort(n.addr, 0, 'node address', true).host]));
  return specs.map((spec) => ({ spec, host: spec.ip ?? addr.get(spec.node) ?? '' }));
}

export class Catalog {
  private timer?: NodeJS.Timeout;
  private stopWatches: (() => void)[] = [];
  /** A pass is due shortly, for a change the catalog waits on. */
  private soon?: NodeJS.Timeout;
  private busy = false;
  /** A pass was asked for while one ran. */
  private passAgain = false;
  /** When this leader first saw each node without its lease. */
  private readonly goneSince = new Map<string, number>();

  constructor(private readonly o: CatalogOptions) {}

  leadershipChanged(isLeader: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const stop of this.stopWatches) stop();
    this.stopWatches = [];
    if (this.soon) clearTimeout(this.soon);
    this.soon = undefined;
    this.goneSince.clear();
    if (!isLeader) return;
    this.timer = setInterval(() => void this.pass(), 500);
    this.timer.unref();
    // A node's lease going is what a failover waits for: note the moment, and act once the grace is over rather than on the next tick.
    this.stopWatches.push(
      this.o.db.watch(ALIVE_PREFIX, true, 0, (_rev, events) => {
        for (const e of events) {
          if (e.type !== 'delete') continue;
          this.goneSince.set(e.kv.key.slice(ALIVE_PREFIX.length), Date.now());
          setTimeout(() => void this.pass(), this.grace() + 10).unref();
        }
      }),
    );
    // A service asked for, and a member's state reported by its agent, are what most steps wait on: act on them now
    // rather than on the next tick. The catalog's own writes come back here too; a pass that changes nothing writes nothing.
    for (const prefix of [SERVICES_PREFIX, STATUS_PREFIX]) this.stopWatches.push(this.o.db.watch(prefix, true, 0, () => this.passSoon()));
  }

  private passSoon(): void {
    if (this.soon || !this.timer) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.pass();
    }, 20);
    this.soon.unref();
  }

  private grace(): number {
    return this.o.graceMs ?? 100;
  }

  private async pass(): Promise<void> {
    if (!this.timer) return; // no longer the leader: a pass asked for before that is void
    if (this.busy) {
      this.passAgain = true;
      return;
    }
    this.busy = true;
    try {
      for (const kv of this.o.db.store.range({ key: SERVICES_PREFIX, prefix: true, limit: 0 }).kvs) {
        const svc = JSON.parse(kv.value) as Service;
        try {
          await this.step(svc, kv.mod_revision);
        } catch (err) {
          // The service's message says what is wrong, so that `service get` shows it rather than the last step that worked.
          const message = `retrying: ${errorMessage(err)}`;
          if (svc.message === message) continue;
          this.o.log.warn({ service: svc.spec.name, status: svc.status, err: errorMessage(err) }, 'catalog step failed; will retry');
          await this.setStatus(svc, kv.mod_revision, svc.status, message).catch(() => {});
        }
      }
    } finally {
      this.busy = false;
    }
    if (this.passAgain && this.timer) {
      this.passAgain = false;
      void this.pass();
    }
  }

  private members(service: string): StoredMember[] {
    return this.o.db.store
      .range({ key: `${MEMBERS_PREFIX}${service}/`, prefix: true, limit: 0 })
      .kvs.map((kv) => ({ spec: memberSpecSchema.parse(JSON.parse(kv.value)), rev: kv.mod_revision }));
  }

  private nodes(): NodeRecord[] {
    return this.o.db.store.range({ key: NODES_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => JSON.parse(kv.value) as NodeRecord);
  }

  private alive(node: string): boolean {
    return this.o.db.store.get(ALIVE_PREFIX + node) !== undefined;
  }

  /** A node for member `index` of `spec`, or why there is none; `pending`: members chosen in this pass but not written yet. */
  private place(spec: ServiceSpec, member: Omit<MemberSpec, 'node' | 'epoch'>, index: number, exclude = new Set<string>(), pending: MemberSpec[] = []) {
    const type = SERVICE_TYPES[spec.type];
    const nodes: NodeInfo[] = this.nodes().map((n) => ({
      id: n.id,
      name: n.name,
      zone: n.zone,
      labels: n.labels ?? {},
      live: this.alive(n.id),
      ...(n.capacity ? { capacity: n.capacity } : {}),
    }));
    const placed: Placed[] = [];
    const stored = this.o.db.store.range({ key: MEMBERS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => memberSpecSchema.parse(JSON.parse(kv.value)));
    for (const m of [...stored, ...pending]) {
      if (m.stopped) continue;
      const svc = m.service === spec.name ? spec : this.service(m.service)?.spec;
      placed.push({ name: m.name, node: m.node, service: m.service, group: svc ? SERVICE_TYPES[svc.type].group(svc, memberIndex(m)) : -1, ...pick(m) });
    }
    const wanted = {
      name: member.name,
      service: spec.name,
      group: type.group(spec, index),
      labels: spec.placement?.labels,
      ...(member.zone ? { zone: member.zone } : {}),
      ...pick(member),
    };
    return place(wanted, nodes, placed, exclude);
  }

  private service(name: string): Service | undefined {
    const kv = this.o.db.store.get(serviceKey(name));
    return kv ? (JSON.parse(kv.value) as Service) : undefined;
  }

  private async setStatus(svc: Service, rev: number, status: Service['status'], message: string, patch: Partial<Service> = {}): Promise<void> {
    if (svc.status === status && svc.message === message && Object.keys(patch).length === 0) return;
    const next: Service = { ...svc, ...patch, status, message, updated_at: new Date().toISOString() };
    await this.o.db.txn({
      compare: [{ key: serviceKey(svc.spec.name), target: 'mod_revision', op: '=', value: rev }],
      success: [{ put: { key: serviceKey(svc.spec.name), value: JSON.stringify(next) } }],
      failure: [],
    });
    this.o.log.info({ service: svc.spec.name, status, message }, 'service status');
  }

  /** Rewrite one member's assignment, only if nobody changed it since we read it. */
  private async putMember(m: StoredMember, next: MemberSpec): Promise<boolean> {
    const key = memberKey(next.service, next.name);
    const r = await this.o.db.txn({
      compare: [{ key, target: 'mod_revision', op: '=', value: m.rev }],
      success: [{ put: { key, value: JSON.stringify(next) } }],
      failure: [],
    });
    return r.succeeded;
  }

  private async step(svc: Service, rev: number): Promise<void> {
    switch (svc.status) {
      case 'DELETING':
        return this.deleting(svc, rev);
      case 'STOPPING':
        return this.stopping(svc, rev);
      case 'FAILED':
      case 'STOPPED':
        return;
      case 'CREATING':
      case 'SCALING':
        return this.placing(svc, rev);
    }
    const have = this.members(svc.spec.name);
    await this.keepAliases(svc, have);
    if (await this.moveOffDeadNodes(svc, have)) return;
    if (svc.status === 'INITIALIZING') return this.initializing(svc, rev, have);
    if (svc.status === 'UPGRADING' || svc.status === 'RESTARTING') return this.rollingOut(svc, rev, have);
    if (svc.status === 'ACTIVE') return this.keepingUp(svc, have);
  }

  /** What a type's steps are given: its state and the service's secrets, read from this leader's store. */
  private typeContext(svc: Service): TypeContext {
    const kv = this.o.db.store.get(serviceSecretsKey(svc.spec.name));
    return {
      state: svc.state ?? {},
      secrets: kv ? (JSON.parse(kv.value) as Record<string, string>) : {},
      log: this.o.log,
      released: (member) => this.o.db.store.get(`${CLAIMS_PREFIX}${svc.spec.name}/${member}`) === undefined,
      exec: this.o.exec,
      lookup: (name) => this.placed(this.members(svc.spec.name)).find((m) => m.spec.dnsName === name)?.host,
    };
  }

  private memberContext(svc: Service, ips: (string | undefined)[], state = svc.state ?? {}): MemberContext {
    const nodeAddrs = this.nodes().map((n) => parseHostPort(n.addr, 0, 'node address', true).host);
    const needed: MemberContext['needed'] = {};
    for (const [kind, name] of Object.entries(svc.spec.needs ?? {}) as [NeedKind, string][]) {
      const kv = this.o.db.store.get(serviceKey(name));
      if (kv) needed[kind] = (JSON.parse(kv.value) as Service).spec;
    }
    return { domain: this.o.domain, ips, state, nodeAddrs, needed };
  }

  /** The type's DNS aliases (e.g. the primary's name) point at their member's current address. */
  private async keepAliases(svc: Service, have: StoredMember[]): Promise<void> {
    const puts = this.aliasPuts(svc, this.placed(have));
    if (puts.length === 0) return;
    await this.o.db.txn({ compare: [], success: puts, failure: [] });
    this.o.log.info(
      { service: svc.spec.name, aliases: puts.map((p) => `${p.put.key.slice(DNS_PREFIX.length)} → ${p.put.value}`) },
      'DNS aliases point at their members',
    );
  }

  /** The writes that would point the service's aliases at their members' addresses; none for those that do already. */
  private aliasPuts(svc: Service, placed: PlacedMember[]): { put: { key: string; value: string } }[] {
    const type = SERVICE_TYPES[svc.spec.type];
    return (type.aliases?.(svc.spec, svc.state ?? {}, this.o.domain) ?? []).flatMap(({ name, member }) => {
      const host = placed.find((m) => m.spec.name === member)?.host;
      const key = DNS_PREFIX + name.toLowerCase();
      return host && this.o.db.store.get(key)?.value !== host ? [{ put: { key, value: host } }] : [];
    });
  }

  /** When each service's roles were last written: they are looked at every few seconds, not every pass. */
  private readonly rolesAt = new Map<string, number>();

  /** ACTIVE: the type's upkeep (e.g. replication slots), and each member's role and lag for `service get`. */
  private async keepingUp(svc: Service, have: StoredMember[]): Promise<void> {
    await this.upkeep(svc, this.placed(have), this.typeContext(svc));
  }

  /**
   * The type's upkeep and a look at the roles. Not a step: a member that
   * does not answer now (its node just died) is looked at again next pass,
   * and says nothing in the service's message.
   */
  private async upkeep(svc: Service, placed: PlacedMember[], ctx: TypeContext): Promise<void> {
    try {
      await SERVICE_TYPES[svc.spec.type].maintain?.(svc.spec, placed, ctx);
    } catch (err) {
      this.o.log.debug({ service: svc.spec.name, err: errorMessage(err) }, 'upkeep failed; will retry');
    }
    await this.refreshRoles(svc, placed, ctx);
  }

  /** Each member's role and lag for `service get`, looked at every few seconds (ACTIVE, and during a rollout). */
  private async refreshRoles(svc: Service, placed: PlacedMember[], ctx: TypeContext): Promise<void> {
    const type = SERVICE_TYPES[svc.spec.type];
    if (!type.roles || Date.now() - (this.rolesAt.get(svc.spec.name) ?? 0) < 3000) return;
    this.rolesAt.set(svc.spec.name, Date.now());
    try {
      const roles = JSON.stringify(await type.roles(svc.spec, placed, ctx));
      const key = ROLES_PREFIX + svc.spec.name;
      if (this.o.db.store.get(key)?.value !== roles) await this.o.db.txn({ compare: [], success: [{ put: { key, value: roles } }], failure: [] });
    } catch (err) {
      this.o.log.debug({ service: svc.spec.name, err: errorMessage(err) }, "could not look at the members' roles; will retry");
    }
  }

  /**
   * CREATING and SCALING: every missing member placed in one pass and
   * written in one transaction, create-if-absent, so that a second leader
   * doing the same step cannot place a member twice.
   */
  private async placing(svc: Service, rev: number): Promise<void> {
    const { spec } = svc;
    const type = SERVICE_TYPES[spec.type];
    const needs = this.o.ipPool.length === 0 ? type.needsStaticIps(spec) : undefined;
    if (needs) return this.setStatus(svc, rev, 'FAILED', needs);
    const have = new Map(this.members(spec.name).map((m) => [m.spec.name, m]));
    const names = Array.from({ length: spec.replicas }, (_, i) => `${spec.name}-${i}`);
    // Scaling down: the highest indexes go (never member 0).
    const extra = [...have.keys()].filter((n) => !names.includes(n));
    if (extra.length > 0) {
      // The type takes them out of the service first (a reconfig, moving data away), with every member running: one on a dead node moves as in ACTIVE.
      const all = [...have.values()];
      if (await this.moveOffDeadNodes(svc, all)) return;
      const placed = this.placed(all);
      const waiting = await type.leave?.(
        spec,
        placed,
        placed.filter((m) => extra.includes(m.spec.name)),
        this.typeContext(svc),
      );
      if (waiting) return this.setStatus(svc, rev, 'SCALING', waiting);
      await this.o.db.txn({ compare: [], success: extra.map((n) => ({ delete: { key: memberKey(spec.name, n), prefix: false } })), failure: [] });
      return;
    }
    const missing = names.flatMap((n, i) => (have.has(n) ? [] : [i]));
    if (missing.length === 0)
      return this.setStatus(
        svc,
        rev,
        'INITIALIZING',
        names.length === 1 ? 'the member is placed; waiting for it to run' : `${names.length} members placed; waiting for them to run`,
      );
    const ips = names.map((n) => have.get(n)?.spec.ip);
    if (this.o.ipPool.length > 0) {
      const free = this.freeIps(missing.length);
      if (free.length < missing.length) return this.setStatus(svc, rev, 'FAILED', 'the static IP pool is exhausted: widen --ip-pool');
      missing.forEach((i, k) => (ips[i] = free[k]));
    }
    const specs = type.members(spec, this.memberContext(svc, ips));
    const chosen: MemberSpec[] = [];
    for (const i of missing) {
      const where = this.place(spec, specs[i], i, new Set(), chosen);
      if ('why' in where) return this.setStatus(svc, rev, svc.status, where.why);
      const zone = this.o.zonal ? this.nodes().find((n) => n.id === where.node)?.zone : undefined;
      chosen.push({ ...specs[i], node: where.node, epoch: 1, generation: svc.generation ?? 0, ...(zone ? { zone } : {}) });
    }
    await this.o.db.txn({
      compare: chosen.map((m) => ({ key: memberKey(spec.name, m.name), target: 'exists' as const, op: '=' as const, value: false })),
      success: chosen.map((m) => ({ put: { key: memberKey(spec.name, m.name), value: JSON.stringify(m) } })),
      failure: [],
    });
  }

  /** Members of nodes whose lease expired go elsewhere, at the next epoch. True if one moved. */
  private async moveOffDeadNodes(svc: Service, have: StoredMember[]): Promise<boolean> {
    const now = Date.now();
    let moved = false;
    for (const m of have) {
      if (m.spec.stopped) continue;
      if (this.alive(m.spec.node)) {
        this.goneSince.delete(m.spec.node);
        continue;
      }
      const since = this.goneSince.get(m.spec.node) ?? now;
      this.goneSince.set(m.spec.node, since);
      if (now - since < this.grace()) continue;
      const where = this.place(svc.spec, m.spec, memberIndex(m.spec), new Set([m.spec.node]));
      if ('why' in where) {
        this.o.log.warn({ member: m.spec.name, why: where.why }, 'cannot move a member off a node whose lease expired');
        continue;
      }
      if (await this.putMember(m, { ...m.spec, node: where.node, epoch: m.spec.epoch + 1 })) {
        moved = true;
        this.o.log.warn({ member: m.spec.name, from: m.spec.node, to: where.node, epoch: m.spec.epoch + 1 }, 'moved a member off a node whose lease expired');
      }
    }
    return moved;
  }

  /** The member runs its current assignment, as its agent reported, and passes its health check if it has one. */
  private running(m: MemberSpec): boolean {
    const st = this.status(m);
    return st?.state === 'running' && (!m.healthCheck || st.health === 'healthy');
  }

  /** What the member's agent last reported of its current assignment. */
  private status(m: MemberSpec): MemberStatus | undefined {
    const kv = this.o.db.store.get(`${STATUS_PREFIX}${m.service}/${m.name}`);
    const st = kv ? (JSON.parse(kv.value) as MemberStatus) : undefined;
    return st && st.epoch === m.epoch && st.node === m.node ? st : undefined;
  }

  private placed(have: StoredMember[]): PlacedMember[] {
    return placedMembers(
      this.o.db,
      have.map((m) => m.spec),
    );
  }

  private async initializing(svc: Service, rev: number, have: StoredMember[]): Promise<void> {
    // A start after a stop: the members run again, at a new epoch.
    const stopped = have.filter((m) => m.spec.stopped);
    if (stopped.length > 0) {
      for (const m of stopped) {
        const { stopped: _, ...spec } = m.spec;
        await this.putMember(m, { ...spec, epoch: m.spec.epoch + 1 });
      }
      return;
    }
    const running = have.filter((m) => this.running(m.spec)).length;
    if (running < have.length) {
      // What holds up a member (its image being pulled, a failure: a missing image, a volume that will not mount) is why the wait goes on: say so.
      const held = have.map((m) => ({ name: m.spec.name, st: this.status(m.spec) })).find(({ st }) => st && st.state !== 'running' && st.message);
      const why = held ? `; ${held.name} ${held.st!.state}: ${held.st!.message}` : '';
      return this.setStatus(svc, rev, 'INITIALIZING', `${running}/${have.length} members running and healthy${why}`);
    }
    const type = SERVICE_TYPES[svc.spec.type];
    // The first time the type's initialization; after that (a scale out, a start after a stop) its join, which brings in members it lacks.
    const waiting = !svc.initialized
      ? await type.initialize(svc.spec, this.placed(have), this.typeContext(svc))
      : ((await type.join?.(svc.spec, this.placed(have), this.typeContext(svc))) ??
        (svc.rebalance ? await type.rebalance?.(svc.spec, this.placed(have), this.typeContext(svc)) : undefined));
    if (waiting) return this.setStatus(svc, rev, 'INITIALIZING', waiting);
    return this.setStatus(svc, rev, 'ACTIVE', `${running}/${have.length} members running`, { initialized: true, rebalance: undefined });
  }

  /**
   * UPGRADING and RESTARTING: once every member runs and serves, the type
   * picks the next member whose spec is of an older generation; it restarts
   * on the same node at epoch + 1 with its spec made anew (image, config
   * files) from the service's current spec and the type's state. A change of
   * the type's state (a new primary) is written in the same transaction.
   */
  private async rollingOut(svc: Service, rev: number, have: StoredMember[]): Promise<void> {
    const type = SERVICE_TYPES[svc.spec.type];
    const generation = svc.generation ?? 0;
    const ctx = this.typeContext(svc);
    const placed = this.placed(have);
    // Upkeep first, whoever is not ready yet: a standby that rejoins may wait for just that (its replication slot).
    await this.upkeep(
      svc,
      placed.filter((m) => !m.spec.stopped),
      ctx,
    );
    // A member the type stopped on purpose (the primary, mid-switchover): the type alone says what comes next.
    const halted = placed.some((m) => m.spec.stopped);
    for (const m of halted ? [] : placed) {
      if (!this.running(m.spec)) return this.setStatus(svc, rev, svc.status, `waiting for ${m.spec.name} to run`);
      const why = await type.notReady(svc.spec, m, ctx);
      if (why) return this.setStatus(svc, rev, svc.status, `waiting for ${m.spec.name}: ${why}`);
    }
    const pending = placed.filter((m) => (m.spec.generation ?? 0) < generation);
    const image = svc.spec.image ?? type.image;
    if (pending.length === 0) return this.setStatus(svc, rev, 'ACTIVE', svc.status === 'UPGRADING' ? `every member runs ${image}` : 'every member restarted');
    const next = await type.rolloutStep(svc.spec, placed, pending, ctx);
    const state = next.state ? { ...ctx.state, ...next.state } : undefined;
    if ('wait' in next) return this.setStatus(svc, rev, svc.status, next.wait, state ? { state } : {});
    if ('stop' in next) {
      const m = have.find((x) => x.spec.name === next.stop)!;
      const message = `stopping ${m.spec.name} to switch over`;
      const r = await this.o.db.txn({
        compare: [
          { key: memberKey(m.spec.service, m.spec.name), target: 'mod_revision', op: '=', value: m.rev },
          { key: serviceKey(svc.spec.name), target: 'mod_revision', op: '=', value: rev },
        ],
        success: [
          { put: { key: memberKey(m.spec.service, m.spec.name), value: JSON.stringify({ ...m.spec, stopped: true }) } },
          {
            put: {
              key: serviceKey(svc.spec.name),
              value: JSON.stringify({ ...svc, ...(state ? { state } : {}), message, updated_at: new Date().toISOString() }),
            },
          },
        ],
        failure: [],
      });
      if (r.succeeded) this.o.log.info({ member: m.spec.name }, 'stopping a member for the rollout');
      return;
    }
    const m = have.find((x) => x.spec.name === next.restart)!;
    const index = memberIndex(m.spec);
    const ips = placed.map((p) => p.spec.ip);
    const fresh = type.members(svc.spec, this.memberContext(svc, ips, state))[index];
    // Where it runs and what fences it stay; the rest is made anew. A new epoch: the agent stops the old container and starts the new one.
    const spec: MemberSpec = { ...fresh, node: m.spec.node, epoch: m.spec.epoch + 1, generation, ...(m.spec.zone ? { zone: m.spec.zone } : {}) };
    const left = pending.length - 1;
    const message = `restarting ${m.spec.name}${svc.status === 'UPGRADING' ? ` on ${image}` : ''} (${left} more after it)`;
    const next_: Service = { ...svc, ...(state ? { state } : {}), message, updated_at: new Date().toISOString() };
    const r = await this.o.db.txn({
      compare: [
        { key: memberKey(m.spec.service, m.spec.name), target: 'mod_revision', op: '=', value: m.rev },
        { key: serviceKey(svc.spec.name), target: 'mod_revision', op: '=', value: rev },
      ],
      success: [
        { put: { key: memberKey(m.spec.service, m.spec.name), value: JSON.stringify(spec) } },
        { put: { key: serviceKey(svc.spec.name), value: JSON.stringify(next_) } },
        // A new primary's name moves in the same transaction: a member restarted by it already finds the name where the state says.
        ...(state ? this.aliasPuts(next_, placed) : []),
      ],
      failure: [],
    });
    if (!r.succeeded) return;
    this.o.log.info({ member: m.spec.name, image: spec.image, generation }, 'rolling a member');
  }

  /** Up to `n` addresses of the pool that no member holds. */
  private freeIps(n: number): string[] {
    const used = new Set(this.o.db.store.range({ key: MEMBERS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => (JSON.parse(kv.value) as MemberSpec).ip));
    return this.o.ipPool.filter((ip) => !used.has(ip)).slice(0, n);
  }

  /** Agents release their claims once their containers are gone. */
  private claimsLeft(service: string): boolean {
    return this.o.db.store.range({ key: `${CLAIMS_PREFIX}${service}/`, prefix: true, limit: 1 }).kvs.length > 0;
  }

  private async stopping(svc: Service, rev: number): Promise<void> {
    const running = this.members(svc.spec.name).filter((m) => !m.spec.stopped);
    if (running.length > 0) {
      for (const m of running) await this.putMember(m, { ...m.spec, stopped: true });
      return;
    }
    if (this.claimsLeft(svc.spec.name)) return this.setStatus(svc, rev, 'STOPPING', 'waiting for the members to stop');
    return this.setStatus(svc, rev, 'STOPPED', 'every member stopped; volumes and addresses kept');
  }

  private async deleting(svc: Service, rev: number): Promise<void> {
    const name = svc.spec.name;
    if (this.members(name).length > 0) {
      await this.o.db.txn({ compare: [], success: [{ delete: { key: `${MEMBERS_PREFIX}${name}/`, prefix: true } }], failure: [] });
      return;
    }
    if (this.claimsLeft(name)) return;
    const type = SERVICE_TYPES[svc.spec.type];
    const aliases = (type.aliases?.(svc.spec, svc.state ?? {}, this.o.domain) ?? []).map((a) => DNS_PREFIX + a.name.toLowerCase());
    // The secrets stay, as the volumes do: a service created again under this name finds data made with them.
    await this.o.db.txn({
      compare: [{ key: serviceKey(name), target: 'mod_revision', op: '=', value: rev }],
      success: [
        { delete: { key: serviceKey(name), prefix: false } },
        { delete: { key: ROLES_PREFIX + name, prefix: false } },
        ...aliases.map((key) => ({ delete: { key, prefix: false } })),
      ],
      failure: [],
    });
    this.o.log.info({ service: name }, 'service deleted');
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
