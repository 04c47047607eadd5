// Each node's agent: make the members assigned to this node run here, and
// nothing else. It converges on every change of /members/ and every few
// seconds, one member at a time, in this order:
//
//   claim (txn on the member's assignment; the claim rides on the node's
//   lease) → volume → static IP → DNS name → config files → container
//
// and backs out in reverse order for members no longer assigned here. A
// member is started only under a claim of this node for its current epoch,
// and a claim can be taken only when no other node holds one: the old holder
// releases it after stopping, or its lease expires and takes the claim along.
import fs from 'node:fs';
import path from 'node:path';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { execInContainer, type Containers } from './docker.ts';
import type { HostsFile } from './hosts-file.ts';
import type { NodeLease } from './lease.ts';
import {
  CLAIMS_PREFIX,
  MEMBERS_PREFIX,
  claimKey,
  containerName,
  memberKey,
  memberSpecSchema,
  fillSecrets,
  serviceSecretsKey,
  statusKey,
  type Claim,
  type MemberSpec,
  type MemberStatus,
} from './members.ts';
import type { DnsProvider, IpProvider, VolumeProvider } from './providers/types.ts';
import type { Watchdog } from './watchdog.ts';

export interface AgentOptions {
  db: ControlDb;
  nodeId: string;
  /** This node's address for members without a static IP. */
  nodeIp: string;
  containers: Containers;
  volumes: VolumeProvider;
  ips: IpProvider;
  dns: DnsProvider;
  lease: NodeLease;
  watchdog: Watchdog;
  log: Logger;
  /** How long a member gets to stop cleanly when it moves. */
  stopGraceSeconds?: number;
  /** The cluster's names for members' /etc/hosts. */
  hosts?: HostsFile;
}

interface Local {
  spec: MemberSpec;
  volumeDir?: string;
  journalDir?: string;
  container?: string;
  /** As last reported. */
  health?: MemberStatus['health'];
}

const key = (m: { service: string; name: string }) => `${m.service}/${m.name}`;

export class Agent {
  /** Members this agent has started and not yet stopped, by service/name. */
  private readonly local = new Map<string, Local>();
  private running = false;
  private again = false;
  private fenced = false;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private fenceTimer?: NodeJS.Timeout;
  private readonly cancelWatches: (() => void)[] = [];
  /** The volume attachment in progress, if any: the next waits for it. */
  private attaching: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: AgentOptions) {}

  async start(): Promise<void> {
    // The lease first: until it is confirmed, a watchdog left by an earlier run keeps guarding the members.
    await this.o.lease.start();
    this.o.watchdog.start();
    this.o.containers.onPulled = () => this.kick();
    this.o.hosts?.start();
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
        this.local.set(key(spec), { spec, ...(await this.attachVolumes(spec, claim)) });
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
    void Promise.all(
      names.map((n) =>
        this.o.containers.docker
          .getContainer(n)
          .kill()
          .catch(() => {}),
      ),
    ).then(() => this.kick());
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
      if (!w || w.epoch !== l.spec.epoch) await this.stopMember(l, w ? 'a new epoch' : 'assigned elsewhere');
    }
    // Side by side: a member's start is mostly Docker's, and one member need not wait for another's.
    await Promise.all(
      [...wanted.values()].map(async (spec) => {
        if (this.stopped || Date.now() >= this.o.lease.fenceDeadline()) return;
        try {
          await this.ensure(spec);
        } catch (err) {
          this.o.log.warn({ member: key(spec), err: errorMessage(err) }, 'could not start member; will retry');
          await this.report(spec, 'failed', errorMessage(err)).catch(() => {});
        }
      }),
    );
    // A member on its way to healthy is looked at again soon: the catalog waits for it.
    if ([...this.local.values()].some((l) => l.spec.healthCheck && l.health !== 'healthy')) setTimeout(() => this.kick(), 200).unref();
  }

  private assigned(): Map<string, MemberSpec> {
    const out = new Map<string, MemberSpec>();
    for (const kv of this.o.db.store.range({ key: MEMBERS_PREFIX, prefix: true, limit: 0 }).kvs) {
      const parsed = memberSpecSchema.safeParse(JSON.parse(kv.value));
      if (parsed.success && parsed.data.node === this.o.nodeId && !parsed.data.stopped) out.set(key(parsed.data), parsed.data);
    }
    return out;
  }

  private spec(service: string, member: string): MemberSpec | undefined {
    const kv = this.o.db.store.get(memberKey(service, member));
    const parsed = kv ? memberSpecSchema.safeParse(JSON.parse(kv.value)) : undefined;
    return parsed?.success ? parsed.data : undefined;
  }

  private claim(service: string, member: string): Claim | undefined {
    const kv = this.o.db.store.get(claimKey(service, member));
    return kv ? (JSON.parse(kv.value) as Claim) : undefined;
  }

  private async ensure(spec: MemberSpec): Promise<void> {
    const k = key(spec);
    const have = this.local.get(k);
    if (have) {
      const st = await this.o.containers.state(containerName(spec));
      if (st?.running) {
        const health = st.health === 'starting' && (await this.passesHealthCheck(spec)) ? 'healthy' : st.health;
        if (health !== have.health) {
          have.health = health;
          await this.report(spec, 'running', health === 'unhealthy' ? 'health check failing' : undefined, have.container, health);
        }
        return;
      }
      // It exited (and Docker gave up restarting it), or someone removed it: start it again below.
    }
    const holder = { node: this.o.nodeId, epoch: spec.epoch };
    if (!(await this.takeClaim(spec))) return;
    if (!(await this.imageReady(spec))) return;
    await this.report(spec, 'starting');
    const { volumeDir, journalDir } = await this.attachVolumes(spec, holder);
    if (spec.ip) await this.o.ips.add(spec.ip);
    if (spec.dnsName) await this.o.dns.upsert(spec.dnsName, spec.ip ?? this.o.nodeIp);
    if (volumeDir) writeFiles(volumeDir, spec, this.secrets(spec));
    // The claim is checked once more right before the container starts: the lease may have lapsed meanwhile.
    if (this.claim(spec.service, spec.name)?.node !== this.o.nodeId || Date.now() >= this.o.lease.fenceDeadline()) return;
    const id = await this.o.containers.run(spec, volumeDir, journalDir, this.o.hosts?.path);
    this.local.set(k, { spec, volumeDir, journalDir, container: id });
    this.o.log.info({ member: k, epoch: spec.epoch, container: id.slice(0, 12) }, 'member started');
    await this.report(spec, 'running', undefined, id);
  }

  /**
   * Docker runs a member's first health check an interval (1 s) after the start (and after each restart), and Docker
   * 20.10 cannot start sooner: while Docker has no verdict yet, the agent runs the check itself, so that a member ready
   * at once is seen healthy at once.
   */
  private async passesHealthCheck(spec: MemberSpec): Promise<boolean> {
    if (!spec.healthCheck) return false;
    const r = await execInContainer(this.o.containers.docker, spec, spec.healthCheck, 2000).catch(() => undefined);
    return r?.exitCode === 0;
  }

  /** Attach the member's data and journal volumes; each one's root belongs to the member's user. */
  private async attachVolumes(spec: MemberSpec, holder: { node: string; epoch: number }): Promise<{ volumeDir?: string; journalDir?: string }> {
    // One at a time: two `losetup --find` at once may pick the same free device.
    const turn = this.attaching.then(() => this.attachVolumesNow(spec, holder));
    this.attaching = turn.catch(() => {});
    return turn;
  }

  private async attachVolumesNow(spec: MemberSpec, holder: { node: string; epoch: number }): Promise<{ volumeDir?: string; journalDir?: string }> {
    const out: { volumeDir?: string; journalDir?: string } = {};
    if (spec.volume) out.volumeDir = await this.o.volumes.attach(spec.volume, holder);
    if (spec.journal) out.journalDir = await this.o.volumes.attach(spec.journal, holder);
    const owner = ownerOf(spec);
    if (owner) for (const dir of [out.volumeDir, out.journalDir]) if (dir) fs.chownSync(dir, owner.uid, owner.gid);
    return out;
  }

  private async detachVolumes(spec: MemberSpec): Promise<void> {
    if (spec.journal) await this.o.volumes.detach(spec.journal);
    if (spec.volume) await this.o.volumes.detach(spec.volume);
  }

  /**
   * The service's secrets, from this node's replica (they were written with the service, before any member),
   * and those it borrows from the services it needs (which cannot be deleted while it exists).
   */
  private secrets(spec: MemberSpec): Record<string, string> {
    if (!spec.secretFiles?.length) return {};
    const of = (service: string) => {
      const kv = this.o.db.store.get(serviceSecretsKey(service));
      if (!kv) throw new Error(`the secrets of service ${service} are missing from the controldb`);
      return JSON.parse(kv.value) as Record<string, string>;
    };
    const secrets = of(spec.service);
    for (const b of spec.borrowedSecrets ?? []) {
      const value = of(b.service)[b.secret];
      if (value === undefined) throw new Error(`service ${b.service} has no secret named ${b.secret}`);
      secrets[b.as] = value;
    }
    return secrets;
  }

  /**
   * Whether the member's image is on this node's engine. If not, the member
   * says "pulling image …" before the pull begins, so that nobody polling its
   * status sees it starting with no reason; a failed pull throws its reason.
   */
  private async imageReady(spec: MemberSpec): Promise<boolean> {
    const image = await this.o.containers.imageState(spec.image);
    if (image.kind === 'present') return true;
    if (image.kind === 'failed') throw new Error(image.message);
    await this.report(spec, 'starting', `pulling image ${spec.image}`);
    if (image.kind === 'absent') this.o.containers.startPull(spec.image);
    return false;
  }

  /**
   * Claim the member for this node at its current epoch. Succeeds only if
   * the assignment is still the one we read and no other node holds a claim.
   */
  private async takeClaim(spec: MemberSpec): Promise<boolean> {
    const mk = memberKey(spec.service, spec.name);
    const ck = claimKey(spec.service, spec.name);
    const assignment = this.o.db.store.get(mk);
    const current = this.o.db.store.get(ck);
    const claim = current ? (JSON.parse(current.value) as Claim) : undefined;
    if (claim && claim.node !== this.o.nodeId) {
      this.o.log.debug({ member: key(spec), holder: claim.node }, 'waiting for the previous holder to release the member');
      return false;
    }
    if (claim && claim.epoch === spec.epoch && current!.lease === this.o.lease.leaseId) return true;
    if (!assignment) return false;
    const r = await this.o.db.txn({
      compare: [
        { key: mk, target: 'mod_revision', op: '=', value: assignment.mod_revision },
        current ? { key: ck, target: 'mod_revision', op: '=', value: current.mod_revision } : { key: ck, target: 'exists', op: '=', value: false },
      ],
      success: [{ put: { key: ck, value: JSON.stringify({ node: this.o.nodeId, epoch: spec.epoch } satisfies Claim), lease: this.o.lease.leaseId } }],
      failure: [],
    });
    return r.succeeded;
  }

  private async stopMember(l: Local, why: string): Promise<void> {
    const { spec } = l;
    const k = key(spec);
    await this.report(spec, 'stopping', why).catch(() => {});
    await this.o.containers.stop(containerName(spec), this.o.stopGraceSeconds ?? 10);
    if (spec.ip) await this.o.ips.remove(spec.ip);
    await this.detachVolumes(spec);
    this.local.delete(k);
    // Release the claim, only if it is still ours: the next holder may take it from now on.
    const ck = claimKey(spec.service, spec.name);
    const current = this.o.db.store.get(ck);
    if (current && (JSON.parse(current.value) as Claim).node === this.o.nodeId) {
      await this.o.db.txn({
        compare: [{ key: ck, target: 'mod_revision', op: '=', value: current.mod_revision }],
        success: [{ delete: { key: ck, prefix: false } }, { delete: { key: statusKey(spec.service, spec.name), prefix: false } }],
        failure: [],
      });
    }
    this.o.log.info({ member: k, epoch: spec.epoch, why }, 'member stopped');
  }

  /** Stop everything without touching the controldb (which may be out of reach). */
  private async stopAll(why: string): Promise<void> {
    for (const [k, l] of this.local) {
      await this.o.containers.stop(containerName(l.spec), 0).catch(() => {});
      if (l.spec.ip) await this.o.ips.remove(l.spec.ip).catch(() => {});
      await this.detachVolumes(l.spec).catch(() => {});
      this.local.delete(k);
      this.o.log.warn({ member: k, why }, 'member stopped');
    }
  }

  private async report(spec: MemberSpec, state: MemberStatus['state'], message?: string, container?: string, health?: MemberStatus['health']): Promise<void> {
    const status: MemberStatus = {
      node: this.o.nodeId,
      epoch: spec.epoch,
      state,
      ...(health ? { health } : {}),
      since: new Date().toISOString(),
      ...(container ? { container } : {}),
      ...(spec.ip ? { ip: spec.ip } : {}),
      ...(message ? { message } : {}),
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
    this.o.lease.stop();
    this.o.watchdog.release();
  }
}

function ownerOf(spec: MemberSpec): { uid: number; gid: number } | undefined {
  if (!spec.user) return undefined;
  const [uid, gid] = spec.user.split(':').map(Number);
  return { uid, gid };
}

/**
 * Write the member's config and secret files into its volume, each
 * atomically (fsynced, then renamed), owned by the member's user. Secret
 * files are readable by that user only.
 */
function writeFiles(volumeDir: string, spec: MemberSpec, secrets: Record<string, string>): void {
  const owner = ownerOf(spec);
  const files = [
    ...(spec.configFiles ?? []).map((f) => ({ path: f.path, content: f.content, mode: f.mode ?? 0o644 })),
    ...(spec.secretFiles ?? []).map((f) => ({ path: f.path, content: fillSecrets(f.template, secrets), mode: 0o600 })),
  ];
  for (const f of files) {
    const file = path.join(volumeDir, f.path);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    fs.rmSync(tmp, { force: true });
    const fd = fs.openSync(tmp, 'w', f.mode);
    try {
      fs.writeFileSync(fd, f.content);
      fs.fchmodSync(fd, f.mode);
      if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  }
}
