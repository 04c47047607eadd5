// The catalog: runs on the Raft leader only, started and stopped with
// leadership. On each pass every service goes through the reconcilers below,
// one concern each, in order; each decides again from the store, and every
// step it takes is one compare-and-set, so a new leader carries on an
// operation the old one started without doubling or losing a step. What a
// pass found is written as the service's conditions (conditions.ts).
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
//
// A step that cannot go on until the user changes something (no static IPs
// left, no node that fits) says so in the Stalled condition and is tried
// again on every pass: no status is a dead end.
import { recordEvent } from '../events/events.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ALIVE_PREFIX, STATUS_PREFIX } from '../agent/members.ts';
import type { MemberExec } from './member-exec.ts';
import { ServicePass, type CatalogEnv } from './pass.ts';
import { aliases } from './reconcilers/aliases.ts';
import { certificates } from './reconcilers/certificates.ts';
import { failover } from './reconcilers/failover.ts';
import { initialization } from './reconcilers/initialization.ts';
import { placement } from './reconcilers/placement.ts';
import type { Reconciler } from './reconcilers/reconciler.ts';
import { rollout } from './reconcilers/rollout.ts';
import { teardown } from './reconcilers/teardown.ts';
import { upkeepReconciler } from './reconcilers/upkeep.ts';
import { readServices } from './service-records.ts';
import { readMembers } from './records.ts';
import { SERVICES_PREFIX } from './types.ts';
import { BACKUPS_PREFIX } from '../backup/records.ts';

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
  /** The backups' reconcilers, looked at on every pass: the runner (its jobs run on in the background), the schedules and retention. */
  backups?: { reconcile(): Promise<void> }[];
}

/** The concerns, in the order a pass runs them; a reconciler that ends a service's pass leaves the rest to the next. */
const RECONCILERS: readonly Reconciler[] = [teardown, placement, aliases, failover, initialization, rollout, certificates, upkeepReconciler];

export class Catalog {
  private timer?: NodeJS.Timeout;
  private stopWatches: (() => void)[] = [];
  /** A pass is due shortly, for a change the catalog waits on. */
  private soon?: NodeJS.Timeout;
  private busy = false;
  /** A pass was asked for while one ran. */
  private passAgain = false;
  private readonly env: CatalogEnv;
  private readonly backups: { reconcile(): Promise<void> }[];

  constructor(o: CatalogOptions) {
    this.backups = o.backups ?? [];
    this.env = {
      db: o.db,
      domain: o.domain,
      ipPool: o.ipPool,
      zonal: o.zonal ?? false,
      log: o.log,
      graceMs: o.graceMs ?? 100,
      exec: o.exec,
      goneSince: new Map(),
      rolesAt: new Map(),
    };
  }

  leadershipChanged(isLeader: boolean): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const stop of this.stopWatches) stop();
    this.stopWatches = [];
    if (this.soon) clearTimeout(this.soon);
    this.soon = undefined;
    this.env.goneSince.clear();
    if (!isLeader) return;
    this.timer = setInterval(() => void this.pass(), 500);
    this.timer.unref();
    // A node's lease going is what a failover waits for: note the moment, and act once the grace is over rather than on the next tick.
    this.stopWatches.push(
      this.env.db.watch(ALIVE_PREFIX, true, 0, (_rev, events) => {
        for (const e of events) {
          if (e.type !== 'delete') continue;
          const node = e.kv.key.slice(ALIVE_PREFIX.length);
          this.env.goneSince.set(node, Date.now());
          this.leaseLost(node);
          setTimeout(() => void this.pass(), this.env.graceMs + 10).unref();
        }
      }),
    );
    // A service asked for, and a member's state reported by its agent, are what most steps wait on: act on them now
    // rather than on the next tick. The catalog's own writes come back here too; a pass that changes nothing writes nothing.
    for (const prefix of [SERVICES_PREFIX, STATUS_PREFIX, BACKUPS_PREFIX]) this.stopWatches.push(this.env.db.watch(prefix, true, 0, () => this.passSoon()));
  }

  /** A node's lease went: an event for each member it ran (each service's history tells its own failover), or for the node alone. */
  private leaseLost(node: string): void {
    const reason = "its node's lease expired, or the node left the cluster";
    const held = readMembers(this.env.db.store)
      .map((m) => m.value)
      .filter((m) => m.node === node && !m.stopped);
    if (held.length === 0) void recordEvent(this.env.db, this.env.log, { kind: 'lease-lost', node, reason });
    for (const m of held) void recordEvent(this.env.db, this.env.log, { kind: 'lease-lost', service: m.service, member: m.name, node, reason });
  }

  private passSoon(): void {
    if (this.soon || !this.timer) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.pass();
    }, 20);
    this.soon.unref();
  }

  private async pass(): Promise<void> {
    if (!this.timer) return; // no longer the leader: a pass asked for before that is void
    if (this.busy) {
      this.passAgain = true;
      return;
    }
    this.busy = true;
    try {
      for (const { value: svc, rev } of readServices(this.env.db.store)) await this.reconcile(new ServicePass(this.env, svc, rev));
      for (const r of this.backups) await r.reconcile().catch((err) => this.env.log.warn({ err: errorMessage(err) }, 'backups: will retry'));
    } finally {
      this.busy = false;
    }
    if (this.passAgain && this.timer) {
      this.passAgain = false;
      void this.pass();
    }
  }

  /** The service through each reconciler that acts in its status, until one ends its pass; then its conditions. */
  private async reconcile(s: ServicePass): Promise<void> {
    for (const r of RECONCILERS) {
      if (!r.during.includes(s.svc.status)) continue;
      try {
        if (await r.reconcile(s)) break;
      } catch (err) {
        // The message and the Degraded condition say what is wrong, so that `service get` shows it rather than the last step that worked.
        const message = `retrying: ${errorMessage(err)}`;
        if (s.svc.message !== message)
          this.env.log.warn({ service: s.name, status: s.svc.status, step: r.name, err: errorMessage(err) }, 'catalog step failed; will retry');
        s.verdicts.failed = { reason: `${r.name}Failed`, message: errorMessage(err) };
        await s.setStatus(s.svc.status, message).catch(() => {});
        return;
      }
    }
    await s.settle().catch((err) => this.env.log.debug({ service: s.name, err: errorMessage(err) }, 'could not write the conditions; next pass'));
  }
}
