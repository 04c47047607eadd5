// The fencing watchdog: a child process that kills this node's member
// containers when the agent has not confirmed its lease in time. It is a
// separate process so that it still acts when the daemon itself is frozen
// (SIGSTOP, a long GC pause, a hung disk): the one case the agent cannot
// fence by itself. The agent feeds it deadlines on stdin; if the agent dies,
// the last deadline still holds.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import { run } from '../exec.ts';
import { selfCommand } from '../native.ts';
import { Containers, dockerClient } from './docker.ts';
import { mounts } from './providers/mounts.ts';
import type { IpProvider } from './providers/types.ts';
import { withTimeout } from '../timeout.ts';

export interface WatchdogOptions {
  dockerHost?: string;
  cluster: string;
  node: string;
  pidFile: string;
  /** Where the node mounts member volumes: unmounted too, so that no filesystem stays held. */
  mountRoot: string;
  /** The daemon's --static-ips, so that the watchdog drops the members' addresses too. */
  staticIps: string;
}

/** The parent's side. */
export class Watchdog {
  private child?: ChildProcess;

  constructor(private readonly opts: WatchdogOptions) {}

  start(): void {
    killPrevious(this.opts.pidFile);
    const [cmd, ...prefix] = selfCommand();
    const args = [...prefix, 'watchdog', '--cluster', this.opts.cluster, '--node', this.opts.node, '--mount-root', this.opts.mountRoot];
    if (this.opts.dockerHost) args.push('--docker-host', this.opts.dockerHost);
    args.push('--static-ips', this.opts.staticIps);
    const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'inherit'], detached: true });
    child.unref();
    child.stdin.on('error', () => {});
    fs.writeFileSync(this.opts.pidFile, String(child.pid));
    this.child = child;
  }

  /** Members must be down by `deadline` (epoch ms) unless fed again. */
  feed(deadline: number): void {
    this.child?.stdin?.write(`${deadline}\n`);
  }

  /** A clean shutdown of the agent: the watchdog keeps its last deadline and exits after acting on it. */
  release(): void {
    this.child?.stdin?.end();
  }
}

function killPrevious(pidFile: string): void {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    // Only if it is still a watchdog of ours: a recycled pid must not be killed.
    if (pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdog')) process.kill(pid, 'SIGKILL');
  } catch {
    /* none running */
  }
}

/** A member container as last seen while Docker answered: enough to fence it without Docker. */
interface Seen {
  id: string;
  name: string;
  pid: number;
  ip?: string;
}

/**
 * The child's side: `firecampd watchdog`. At the deadline it kills the
 * member containers, drops their static IPs and unmounts their volumes, so
 * that the node holds nothing another node may be about to take. Docker may
 * be gone too (dockerd killed along with firecampd while the containers run
 * on under their shims): then it kills the containers' processes itself, by
 * the pids it noted while Docker still answered.
 */
export async function runWatchdog(opts: { dockerHost?: string; cluster: string; node: string; mountRoot: string; ips: IpProvider }): Promise<void> {
  const containers = new Containers(dockerClient(opts.dockerHost), opts.cluster, opts.node);
  let deadline = 0;
  let parentGone = false;
  let seen: Seen[] = [];
  let lastLook = 0;
  let looking = false;
  readline
    .createInterface({ input: process.stdin })
    .on('line', (line) => {
      const d = Number(line);
      if (Number.isFinite(d)) deadline = d;
    })
    .on('close', () => (parentGone = true));
  for (;;) {
    // Every 100 ms, and on the deadline itself.
    const untilDeadline = deadline > 0 ? deadline - Date.now() : 100;
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(100, untilDeadline))));
    // In the background: a hung dockerd must not hold up the deadline below.
    if (!looking && Date.now() - lastLook > 1000 && (deadline === 0 || Date.now() < deadline)) {
      lastLook = Date.now();
      looking = true;
      void look(containers)
        .then(
          (s) => (seen = s),
          () => {},
        )
        .finally(() => (looking = false));
    }
    if (deadline > 0 && Date.now() >= deadline) {
      const killed = await fence(containers, seen, opts.ips);
      await releaseMounts(opts.mountRoot);
      if (killed.length > 0)
        process.stderr.write(
          `${JSON.stringify({ level: 40, time: Date.now(), msg: 'watchdog: lease not confirmed in time; killed member containers', containers: killed })}\n`,
        );
      seen = [];
      deadline = 0;
      if (parentGone) return;
    }
    if (parentGone && deadline === 0) return;
  }
}

async function look(containers: Containers): Promise<Seen[]> {
  const out: Seen[] = [];
  for (const c of (await containers.list()).filter((x) => x.running)) {
    const pid = await containers.pid(c.id);
    out.push({ id: c.id, name: c.name, pid, ...(c.ip ? { ip: c.ip } : {}) });
  }
  return out;
}

/**
 * Kill every member container, through Docker and, where Docker is slow, by
 * the pids last seen; drop their IPs; returns their names.
 */
async function fence(containers: Containers, seen: Seen[], ips: IpProvider): Promise<string[]> {
  // `docker kill` marks a container as stopped on purpose: its restart policy (on-failure) leaves it down. A process
  // killed behind Docker's back would be started again; so Docker first, the pids only if it has not acted in time.
  const kill = (id: string) => containers.kill(id).catch(() => {});
  const killedSeen = Promise.all(seen.map((s) => kill(s.id)));
  // Containers started since the last look, which only Docker knows of.
  const others = withTimeout(
    containers.list().then((l) => l.filter((c) => c.running)),
    DOCKER_WAIT_MS,
    'Docker',
  ).then(
    async (running) => {
      await Promise.all(running.filter((c) => !seen.some((s) => s.id === c.id)).map((c) => kill(c.id)));
      return running;
    },
    () => undefined,
  );
  // The lease may expire at the leader a fraction of a second from now: a Docker that is dead or hung gets little time.
  await withTimeout(killedSeen, PID_FALLBACK_MS, 'Docker').catch(() => {});
  for (const s of seen) {
    // Only the process that is still this container's (its cgroup names the container id): a pid may have been reused.
    const cgroup = readOr(`/proc/${s.pid}/cgroup`);
    if (s.pid > 0 && cgroup.includes(s.id)) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }
  const running = await withTimeout(others, DOCKER_WAIT_MS, 'Docker').catch(() => undefined);
  const addrs = new Set([...seen.flatMap((s) => (s.ip ? [s.ip] : [])), ...(running ?? []).flatMap((c) => (c.ip ? [c.ip] : []))]);
  for (const ip of addrs) await ips.remove(ip).catch(() => {});
  return [...new Set([...seen.map((s) => s.name), ...(running ?? []).map((c) => c.name)])];
}

/** How long `docker kill` of a known container may take before its processes are killed directly. */
const PID_FALLBACK_MS = 150;
const DOCKER_WAIT_MS = 1000;

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Unmount the member volumes under `root` and free their loop devices. */
async function releaseMounts(root: string): Promise<void> {
  for (const { device, dir } of mounts().filter((m) => m.dir.startsWith(root + '/'))) {
    await run('umount', [dir]).catch(() => run('umount', ['-l', dir]).catch(() => ''));
    if (device.startsWith('/dev/loop')) await run('losetup', ['-d', device]).catch(() => '');
  }
}
