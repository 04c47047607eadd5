// npm run package: dist/firecampd-<version>-linux-x64.tar.gz with one
// executable that needs no Node.js (a Node single executable application
// carrying the bundle, its chunks and the SQLite addon), the systemd unit, a sample
// environment file and INSTALL.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildBundle, seaAssets } from '../esbuild.config.mjs';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
process.chdir(root);
const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
const name = `firecampd-${pkg.version}`;
const stage = path.join('dist', name);
const tarball = path.join('dist', `${name}-linux-x64.tar.gz`);

await buildBundle();
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });

// 1. The SEA blob: the bundle (with a code cache for a faster start), the addon and the bundle's chunks as assets.
const seaConfig = path.join('dist', 'sea-config.json');
fs.writeFileSync(
  seaConfig,
  JSON.stringify({
    main: 'dist/firecampd.cjs',
    output: 'dist/sea-prep.blob',
    disableExperimentalSEAWarning: true,
    useCodeCache: true,
    assets: seaAssets,
  }),
);
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

// 2. A copy of this Node binary, stripped of symbols, with the blob injected.
const exe = path.join(stage, 'firecampd');
fs.copyFileSync(process.execPath, exe);
fs.chmodSync(exe, 0o755);
try {
  execFileSync('strip', ['--strip-all', exe]);
} catch {
  console.warn('strip not found: the binary keeps its symbols (larger, works the same)');
}
execFileSync(
  process.execPath,
  [
    path.join('node_modules', 'postject', 'dist', 'cli.js'),
    exe,
    'NODE_SEA_BLOB',
    'dist/sea-prep.blob',
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  ],
  { stdio: ['ignore', 'ignore', 'inherit'] },
);

// 3. The unit, the environment file and INSTALL beside it; then the tarball.
for (const f of ['firecampd.service', 'firecampd.env', 'INSTALL']) fs.copyFileSync(path.join('packaging', f), path.join(stage, f));
execFileSync('tar', ['-czf', tarball, '-C', 'dist', name]);
const mib = (f) => (fs.statSync(f).size / 2 ** 20).toFixed(1);
console.log(`${tarball}: ${mib(tarball)} MiB (firecampd ${mib(exe)} MiB)`);
