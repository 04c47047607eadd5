// One dockerd per test-bed node, in the node's network namespace, and the
// test images built from this machine's Debian packages (there is no
// registry): a root filesystem made here, `docker import`ed into each
// dockerd. Started with nsenter --net (not `ip netns exec`, which would hide
// the cgroup mounts from dockerd).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sh } from './netns.ts';

export const BUSYBOX_IMAGE = 'firecampd/busybox:1';
export const REDIS_IMAGE = 'firecampd/redis:7';

export interface NodeDocker {
  ns: string;
  host: string;
  root: string;
  proc: ChildProcess;
}

export function requireDocker(): void {
  for (const tool of ['dockerd', 'docker', 'busybox', 'losetup', 'mkfs.ext4', 'arping', 'redis-server', 'redis-cli', 'ldd']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`the agent tests need ${tool}: apt-get install docker.io busybox-static util-linux e2fsprogs iputils-arping redis-server redis-tools`);
    }
  }
}

export async function startDockerd(ns: string): Promise<NodeDocker> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `fcb-docker-${ns}-`));
  const host = `unix://${root}/docker.sock`;
  const proc = spawn(
    'nsenter',
    [`--net=/var/run/netns/${ns}`, 'dockerd', '--data-root', `${root}/data`, '--exec-root', `${root}/exec`, '--pidfile', `${root}/docker.pid`, '-H', host, '--bridge=none', '--iptables=false', '--ip6tables=false'],
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
        throw new Error(`dockerd in ${ns} did not start: ${(err as Error).message}\n${fs.readFileSync(`${root}/dockerd.log`, 'utf8').slice(-2000)}`);
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

/** Root filesystem tarballs of the test images, made once per process. */
const tarballs = new Map<string, string>();

/** busybox with its applets; with `programs`, those binaries and every shared library they load. */
function rootfs(image: string, programs: string[]): string {
  const made = tarballs.get(image);
  if (made) return made;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fcb-rootfs-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'data', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(root, d), { recursive: true });
  const busybox = execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim();
  fs.copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox')) {
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  for (const prog of programs) {
    const real = fs.realpathSync(execFileSync('sh', ['-c', `command -v ${prog}`], { encoding: 'utf8' }).trim());
    fs.copyFileSync(real, path.join(root, 'bin', prog));
    // Every library ldd names (and the loader), at the same path as on this machine.
    for (const lib of execFileSync('ldd', [real], { encoding: 'utf8' }).matchAll(/(\/\S+\.so[.\d]*)/g)) {
      const target = path.join(root, lib[1]!);
      if (fs.existsSync(target)) continue;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(fs.realpathSync(lib[1]!), target);
    }
  }
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
  const tar = path.join(dir, 'image.tar');
  execFileSync('tar', ['-C', root, '-cf', tar, '.']);
  tarballs.set(image, tar);
  return tar;
}

export function loadImages(d: { host: string }): void {
  for (const [image, programs] of [[BUSYBOX_IMAGE, []], [REDIS_IMAGE, ['redis-server', 'redis-cli']]] as const) {
    execFileSync('docker', ['-H', d.host, 'import', '--change', 'ENV PATH=/bin', '--change', 'CMD ["/bin/sh"]', rootfs(image, [...programs]), image], { stdio: 'ignore' });
  }
}
