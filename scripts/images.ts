// npm run images: firecampd's own images, built from this machine's Debian
// packages and `docker import`ed into a Docker engine. Each image is busybox
// with its applets plus the service's programs and every shared library they
// load (as ldd names them, at the same paths), so nothing needs a registry.
// The test bed loads the same images into each node's dockerd.
//
//   npm run images [-- --docker-host unix:///var/run/docker.sock] [--json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { redis } from '../src/catalog/services/redis/redis.ts';

export const BUSYBOX_IMAGE = 'firecampd/busybox:1';
/** The Redis type's default image. */
export const REDIS_IMAGE = redis.image;

/** Each image, with the programs it holds besides busybox and the Debian packages they come from. */
const IMAGES: { image: string; programs: string[]; packages: string[] }[] = [
  { image: BUSYBOX_IMAGE, programs: [], packages: ['busybox-static'] },
  { image: REDIS_IMAGE, programs: ['redis-server', 'redis-cli'], packages: ['busybox-static', 'redis-server', 'redis-tools'] },
];

const which = (prog: string): string | undefined => {
  try {
    return execFileSync('sh', ['-c', `command -v ${prog}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
};

/** Throws, naming the packages to install, when a program an image needs is missing here. */
export function requireImageTools(): void {
  const missing = IMAGES.flatMap((i) => ['busybox', 'ldd', 'tar', 'docker', ...i.programs]).filter((p, k, all) => all.indexOf(p) === k && !which(p));
  if (missing.length > 0) {
    const packages = [...new Set(['docker.io', ...IMAGES.flatMap((i) => i.packages)])].join(' ');
    throw new Error(`building firecampd's images needs ${missing.join(', ')}: apt-get install ${packages}`);
  }
}

/** Root filesystem tarballs, made once per process. */
const tarballs = new Map<string, string>();

function rootfs(image: string, programs: string[]): string {
  const made = tarballs.get(image);
  if (made) return made;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firecampd-rootfs-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'tmp', 'data', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(root, d), { recursive: true });
  const busybox = which('busybox')!;
  fs.copyFileSync(busybox, path.join(root, 'bin', 'busybox'));
  fs.chmodSync(path.join(root, 'bin', 'busybox'), 0o755);
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a && a !== 'busybox')) {
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  for (const prog of programs) {
    const real = fs.realpathSync(which(prog)!);
    fs.copyFileSync(real, path.join(root, 'bin', prog));
    // Every library ldd names (and the loader), at the same path as on this machine.
    for (const lib of execFileSync('ldd', [real], { encoding: 'utf8' }).matchAll(/(\/\S+\.so[.\d]*)/g)) {
      const target = path.join(root, lib[1]);
      if (fs.existsSync(target)) continue;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(fs.realpathSync(lib[1]), target);
    }
  }
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
  fs.writeFileSync(path.join(root, 'etc', 'group'), 'root:x:0:\n');
  const tar = path.join(dir, 'image.tar');
  execFileSync('tar', ['-C', root, '-cf', tar, '.']);
  tarballs.set(image, tar);
  return tar;
}

/** Build every image and import it into the engine at `host`; returns what was imported. */
export function importImages(host: string): { image: string; id: string }[] {
  return IMAGES.map(({ image, programs }) => {
    const out = execFileSync('docker', ['-H', host, 'import', '--change', 'ENV PATH=/bin', '--change', 'CMD ["/bin/sh"]', rootfs(image, programs), image], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { image, id: out.trim() };
  });
}

function main(argv: string[]): void {
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const given = flag('--docker-host') ?? process.env.DOCKER_HOST ?? '/var/run/docker.sock';
  const host = given.includes('://') ? given : `unix://${given}`;
  requireImageTools();
  const imported = importImages(host);
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ docker_host: host, images: imported }) + '\n');
    return;
  }
  for (const i of imported) process.stdout.write(`${i.image.padEnd(22)} ${i.id}\n`);
  process.stdout.write(`imported into ${host}; do the same on every node that may run members\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    main(process.argv.slice(2));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    process.stderr.write(`images: ${e.stderr?.toString().trim() || e.message}\n`);
    process.exit(1);
  }
}
