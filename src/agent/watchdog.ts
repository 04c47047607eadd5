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

export interface WatchdogOptions {
  dockerHost?: string;
  cluster: string;
  node: string;
  pidFile: string;
  /** Where the node mounts member volumes: unmounted too, so that no filesystem stays held. */
  mountRoot: string;
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
    const child = spawn(cmd!, args, { stdio: ['pipe', 'ignore', 'inherit'], detached: true });
    child.unref();
    child.stdin!.on('error', () => {});
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

/** The child's side: `firecampd watchdog`. */
export async function runWatchdog(opts: { dockerHost?: string; cluster: string; node: string; mountRoot: string }): Promise<void> {
  const containers = new Containers(dockerClient(opts.dockerHost), opts.cluster, opts.node);
  let deadline = 0;
  let parentGone = false;
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const d = Number(line);
    if (Number.isFinite(d)) deadline = d;
  }).on('close', () => (parentGone = true));
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    if (deadline > 0 && Date.now() >= deadline) {
      const running = (await containers.list().catch(() => [])).filter((c) => c.running);
      await Promise.all(running.map((c) => containers.docker.getContainer(c.id).kill().catch(() => {})));
      await releaseMounts(opts.mountRoot);
      if (running.length > 0) process.stderr.write(`${JSON.stringify({ level: 40, time: Date.now(), msg: 'watchdog: lease not confirmed in time; killed member containers', containers: running.map((c) => c.name) })}\n`);
      deadline = 0;
      if (parentGone) return;
    }
    if (parentGone && deadline === 0) return;
  }
}

/** Unmount the member volumes under `root` and free their loop devices. */
async function releaseMounts(root: string): Promise<void> {
  const mounts = fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f[1]?.startsWith(root + '/'));
  for (const [device, dir] of mounts) {
    await run('umount', [dir!]).catch(() => run('umount', ['-l', dir!]).catch(() => ''));
    if (device?.startsWith('/dev/loop')) await run('losetup', ['-d', device]).catch(() => '');
  }
}
