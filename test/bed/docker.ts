// One dockerd per test-bed node, in the node's network namespace, and the
// test images built from this machine's Debian packages (there is no
// registry): scripts/images.ts makes them, `docker import`ed into each
// dockerd. Started with nsenter --net (not `ip netns exec`, which would hide
// the cgroup mounts from dockerd).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireImageTools } from '../../scripts/images.ts';
import { sh } from './netns.ts';
import { postgres } from '../../src/catalog/services/postgres/postgres.ts';
import { redis } from '../../src/catalog/services/redis/redis.ts';

export { BUSYBOX_IMAGE } from '../../scripts/images.ts';
export const REDIS_IMAGE = redis.image;
export const POSTGRES_IMAGE = postgres.image;

export interface NodeDocker {
  ns: string;
  host: string;
  root: string;
  proc: ChildProcess;
}

/** Throws, naming what to install, unless this machine can run the bed's dockerds and build `images`. */
export function requireDocker(images: string[]): void {
  requireImageTools(images);
  for (const tool of ['dockerd', 'losetup', 'mkfs.ext4', 'arping']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`the agent tests need ${tool}: apt-get install docker.io util-linux e2fsprogs iputils-arping`);
    }
  }
}

export async function startDockerd(ns: string): Promise<NodeDocker> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `fcb-docker-${ns}-`));
  const host = `unix://${root}/docker.sock`;
  const proc = spawn(
    'nsenter',
    [
      `--net=/var/run/netns/${ns}`,
      'dockerd',
      '--data-root',
      `${root}/data`,
      '--exec-root',
      `${root}/exec`,
      '--pidfile',
      `${root}/docker.pid`,
      '-H',
      host,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
    ],
    { stdio: ['ignore', fs.openSync(`${root}/dockerd.log`, 'a'), fs.openSync(`${root}/dockerd.log`, 'a')] },
  );
  const d = { ns, host, root, proc };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      docker(d, ['info', '--format', '{{.ServerVersion}}']);
      return d;
    } catch (err) {
      if (Date.now() > deadline || proc.exitCode !== null) {
        stopDockerd(d);
        throw new Error(`dockerd in ${ns} did not start: ${(err as Error).message}\n${fs.readFileSync(`${root}/dockerd.log`, 'utf8').slice(-2000)}`, {
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export function docker(d: { host: string }, args: string[]): string {
  return execFileSync('docker', ['-H', d.host, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Containers that run on this dockerd now, by name. */
export function runningContainers(d: { host: string }): string[] {
  try {
    return docker(d, ['ps', '--format', '{{.Names}}']).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

/** Remove every container, stop dockerd, and undo its mounts; synchronous, for exit handlers. */
export function stopDockerd(d: NodeDocker): void {
  try {
    const ids = docker(d, ['ps', '-aq']).split('\n').filter(Boolean);
    if (ids.length > 0) docker(d, ['rm', '-f', ...ids]);
  } catch {
    /* dockerd already gone */
  }
  if (d.proc.exitCode === null && d.proc.signalCode === null) {
    d.proc.kill('SIGTERM');
    const deadline = Date.now() + 10_000;
    while (fs.existsSync(`${d.root}/docker.pid`) && Date.now() < deadline) execFileSync('sleep', ['0.1']);
    d.proc.kill('SIGKILL');
  }
  for (const mnt of mountsUnder(d.root).reverse()) sh('umount', ['-l', mnt], { ignoreErrors: true });
  fs.rmSync(d.root, { recursive: true, force: true });
}

export function mountsUnder(dir: string): string[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir));
}
