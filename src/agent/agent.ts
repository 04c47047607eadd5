// Each node's agent: make the members assigned to this node run here, and
// nothing else. It converges on every change of /members/ and every few
// seconds: each member assigned here is taken through its steps
// (steps/steps.ts: claim → image → volumes → logs → restore → firewall → address → name → files →
// container → metrics → health), and each member no longer assigned here back through
// them in reverse. A member is started only under a claim of this node for
// its current epoch, and a claim can be taken only when no other node holds
// one: the old holder releases it after stopping, or its lease expires and
// takes the claim along.
import { readClaim, readMember, readMembers } from '../catalog/records.ts';
import { errorMessage } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import { CLAIMS_PREFIX, MEMBERS_PREFIX, containerName, statusKey, type MemberSpec, type MemberStatus } from './members.ts';
import type { MemberRun, NodeContext, NodeProviders, StopMode } from './steps/step.ts';
import { startMember, stopMember } from './steps/steps.ts';
import { attachVolumes } from './steps/volumes.ts';
import type { Watchdog } from './watchdog.ts';

export interface AgentOptions extends NodeProviders {
  watchdog: Watchdog;
  /** How long a member gets to stop cleanly when it moves (default 10 s). */
  stopGraceSeconds?: number;
}

const key = (m: { service: string; name: string }) => `${m.service}/${m.name}`;

export class Agent {
  /** Members this agent has started and not yet stopped, by service/name. */
  private readonly local = new Map<string, MemberRun>();
  /** Members whose steps are running now, for what their steps learned (the certificate's end) before they are local. */
  private readonly starting = new Map<string, MemberRun>();
  /** How many times the agent started each member on this node (its first start, then each restart or new epoch). */
  private readonly starts = new Map<string, number>();
  /** Why each member's last start failed, so that a retry for the same reason records no new event. */
  private readonly failedWith = new Map<string, string>();
  private running = false;
  private again = false;
  private fenced = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private fenceTimer?: NodeJS.Timeout;
  private readonly cancelWatches: (() => void)[] = [];
  /** The volume attachment in progress, if any: the next waits for it. */
  private attaching: Promise<unknown> = Promise.resolve();
  /** What the member steps work with. */
  private readonly node: NodeContext;

  constructor(private readonly o: AgentOptions) {
    this.node = {
      db: o.db,
      nodeId: o.nodeId,
      nodeIp: o.nodeIp,
      containers: o.containers,
      volumes: o.volumes,
      ips: o.ips,
      dns: o.dns,
      lease: o.lease,
      log: o.log,
      stopGraceSeconds: o.stopGraceSeconds ?? 10,
      ...(o.hosts ? { hosts: o.hosts } : {}),
      ...(o.firewall ? { firewall: o.firewall } : {}),
      ...(o.logs ? { logs: o.logs } : {}),
      ...(o.javaAgents ? { javaAgents: o.javaAgents } : {}),
      report: (...args) => this.report(...args),
      serialize: <T>(fn: () => Promise<T>): Promise<T> => {
        const turn = this.attaching.then(fn);
        this.attaching = turn.catch(() => {});
        return turn;
      },
    };
  }

  /** The members this node holds, with where their volume is mounted (once it is). */
  runningMembers(): { spec: MemberSpec; volumeDir?: string }[] {
    return [...this.local.values()].map((r) => ({ spec: r.spec, ...(r.volumeDir ? { volumeDir: r.volumeDir } : {}) }));
  }

  /** How many times a member restarted on this node since the agent started: started again by the agent, or by Docker after a crash. */
  restarts(spec: MemberSpec): number {
    const k = key(spec);
    return Math.max(0, (this.starts.get(k) ?? 0) - 1) + (this.local.get(k)?.crashRestarts ?? 0);
  }

  async start(): Promise<void> {
    // The lease first: until it is confirmed, a watchdog left by an earlier run keeps guarding the members.
    await this.o.lease.start();
    this.o.watchdog.start();
    this.o.containers.onPulled = () => this.kick();
    this.o.hosts?.start();
    // Before any member is adopted or started: the walls of the members assigned here, from the controldb.
    await this.o.firewall?.start();
    await this.adopt();
    // Assignments, and claims: a member moving here starts as soon as the old holder lets go.
    for (const prefix of [MEMBERS_PREFIX, CLAIMS_PREFIX]) this.cancelWatches.push(this.o.db.watch(prefix, true, 0, () => this.kick()));
    this.timer = setInterval(() => this.kick(), 2000);
    this.fenceTimer = setInterval(() => this.checkFence(), 100);
    this.kick();
  }

  /** After a restart: keep the containers that are still ours to run; the rest go in the first pass. */
  private async adopt(): Promise<void> {
    for (const c of await this.o.containers.list()) {
      const spec = this.spec(c.service, c.member);
      const claim = this.claim(c.service, c.member);
      if (
        spec &&
        c.running &&
        !spec.stopped &&
        spec.node === this.o.nodeId &&
        spec.epoch === c.epoch &&
        claim?.node === this.o.nodeId &&
        claim.epoch === c.epoch
      ) {
        // Its exporter stays with it; the member's own container brings it back under the agent.
        if (c.sidecar) continue;
        const run: MemberRun = { spec };
        await attachVolumes(this.node, run);
        if (run.volumeDir) this.o.logs?.open(spec, run.volumeDir);
        this.local.set(key(spec), run);
        this.o.log.info({ member: key(spec), epoch: c.epoch }, 'kept a running member across the agent restart');
      } else {
        await this.o.containers.remove(c.name);
        this.o.log.info({ container: c.name }, 'removed a container that is no longer ours to run');
      }
    }
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.reconcile()
      .catch((err) => this.o.log.warn({ err: errorMessage(err) }, 'reconcile failed; will retry'))
      .finally(() => {
        this.running = false;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /**
   * Fencing: past the deadline the lease may be gone at the leader and the
   * members given to another node. The watchdog acts too, in case this
   * process is frozen; here the agent also forgets what it ran, so it claims
   * anew before starting anything.
   */
  private checkFence(): void {
    const deadline = this.o.lease.fenceDeadline();
    this.o.watchdog.feed(deadline);
    if (this.fenced || this.local.size === 0 || Date.now() < deadline) return;
    this.fenced = true;
    this.o.log.warn({ members: [...this.local.keys()] }, 'node lease not confirmed in time: stopping every member (fenced)');
    const names = [...this.local.values()].map((l) => containerName(l.spec));
    void Promise.all(names.map((n) => this.o.containers.kill(n).catch(() => {}))).then(() => this.kick());
  }

  private async reconcile(): Promise<void> {
    if (Date.now() >= this.o.lease.fenceDeadline()) {
      if (this.fenced) await this.stopAll('fenced');
      return;
    }
    this.fenced = false;
    const wanted = this.assigned();
    for (const [k, l] of this.local) {
      const w = wanted.get(k);
      if (!w || w.epoch !== l.spec.epoch) await this.stopRun(l, { online: true, why: w ? 'a new epoch' : 'assigned elsewhere' });
    }
    // Side by side: a member's start is mostly Docker's, and one member need not wait for another's.
    await Promise.all(
      [...wanted.values()].map(async (spec) => {
        if (this.stopped || Date.now() >= this.o.lease.fenceDeadline()) return;
        try {
          await this.ensure(spec);
        } catch (err) {
          this.o.log.warn({ member: key(spec), err: errorMessage(err) }, 'could not start member; will retry');
          // Once per cause: a start retried every pass for the same reason is one event.
          if (this.failedWith.get(key(spec)) !== errorMessage(err)) this.event(spec, 'failed', errorMessage(err));
          this.failedWith.set(key(spec), errorMessage(err));
          await this.report(spec, 'failed', errorMessage(err)).catch(() => {});
        }
      }),
    );
    // A member on its way to healthy is looked at again soon: the catalog waits for it.
    if ([...this.local.values()].some((l) => l.spec.healthCheck && l.health !== 'healthy')) setTimeout(() => this.kick(), 200).unref();
  }

  private assigned(): Map<string, MemberSpec> {
    const out = new Map<string, MemberSpec>();
    for (const { value: m } of readMembers(this.o.db.store)) if (m.node === this.o.nodeId && !m.stopped) out.set(key(m), m);
    return out;
  }

  private spec(service: string, member: string): MemberSpec | undefined {
    return readMember(this.o.db.store, service, member)?.value;
  }

  private claim(service: string, member: string) {
    return readClaim(this.o.db.store, service, member)?.value;
  }

  /** A member this agent runs: follow its container and health. Otherwise (new here, or its container is gone) take it through its steps. */
  private async ensure(spec: MemberSpec): Promise<void> {
    const k = key(spec);
    const have = this.local.get(k);
    if (have) {
      const st = await this.o.containers.state(containerName(spec));
      if (st?.running) {
        have.crashRestarts = st.restarts;
        const health = st.health === 'starting' && (await this.passesHealthCheck(spec)) ? 'healthy' : st.health;
        if (health !== have.health) {
          if (health === 'healthy' || health === 'unhealthy')
            this.event(spec, health, health === 'healthy' ? 'its health check passes' : 'its health check fails');
          have.health = health;
          await this.report(spec, 'running', health === 'unhealthy' ? 'health check failing' : undefined, have.container, health);
        }
        return;
      }
      // It exited (and Docker gave up restarting it), or someone removed it: start it again below.
    }
    const run: MemberRun = { spec };
    this.starting.set(k, run);
    try {
      if (await startMember(this.node, run)) {
        this.local.set(k, run);
        this.starts.set(k, (this.starts.get(k) ?? 0) + 1);
        this.failedWith.delete(k);
        this.event(spec, 'started', `epoch ${spec.epoch}, ${spec.image}`);
      }
    } finally {
      this.starting.delete(k);
    }
  }

  /**
   * Docker runs a member's first health check an interval (1 s) after the start (and after each restart), and Docker
   * 20.10 cannot start sooner: while Docker has no verdict yet, the agent runs the check itself, so that a member ready
   * at once is seen healthy at once.
   */
  private async passesHealthCheck(spec: MemberSpec): Promise<boolean> {
    if (!spec.healthCheck) return false;
    const r = await this.o.containers.exec(spec, spec.healthCheck, 2000).catch(() => undefined);
    return r?.exitCode === 0;
  }

  private async stopRun(run: MemberRun, mode: StopMode): Promise<void> {
    const k = key(run.spec);
    if (mode.online) await this.report(run.spec, 'stopping', mode.why).catch(() => {});
    await stopMember(this.node, run, mode);
    this.local.delete(k);
    this.o.log[mode.online ? 'info' : 'warn']({ member: k, epoch: run.spec.epoch, why: mode.why }, 'member stopped');
    // Offline (fenced), the controldb is out of reach: the lease the leader saw go tells of it.
    if (mode.online) this.event(run.spec, 'stopped', mode.why);
  }

  /** Record what this agent did with a member (see src/events/events.ts; best effort, never awaited). */
  private event(spec: MemberSpec, kind: string, reason: string): void {
    void recordEvent(this.o.db, this.o.log, { kind, service: spec.service, member: spec.name, node: this.o.nodeId, reason });
  }

  /** Stop everything without touching the controldb (which may be out of reach). */
  private async stopAll(why: string): Promise<void> {
    for (const run of [...this.local.values()]) await this.stopRun(run, { online: false, why });
  }

  private async report(spec: MemberSpec, state: MemberStatus['state'], message?: string, container?: string, health?: MemberStatus['health']): Promise<void> {
    const certificateEnds = (this.starting.get(key(spec)) ?? this.local.get(key(spec)))?.certificateEnds;
    const status: MemberStatus = {
      node: this.o.nodeId,
      epoch: spec.epoch,
      state,
      ...(health ? { health } : {}),
      since: new Date().toISOString(),
      ...(container ? { container } : {}),
      ...(spec.ip ? { ip: spec.ip } : {}),
      ...(message ? { message } : {}),
      ...(certificateEnds ? { certificateEnds } : {}),
    };
    await this.o.db.txn({
      compare: [],
      success: [{ put: { key: statusKey(spec.service, spec.name), value: JSON.stringify(status), lease: this.o.lease.leaseId } }],
      failure: [],
    });
  }

  /**
   * A clean shutdown of the daemon leaves members running: a restart must
   * not restart them. The watchdog stops them if the node stays away longer
   * than its lease allows.
   */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.fenceTimer) clearInterval(this.fenceTimer);
    for (const cancel of this.cancelWatches) cancel();
    this.o.hosts?.stop();
    // Members run on: the next agent reads their output on from where this one's kept log ends.
    this.o.logs?.detachAll();
    // The table stays: the members it walls keep running while the daemon is away.
    this.o.firewall?.stop();
    this.o.lease.stop();
    this.o.watchdog.release();
  }
}
