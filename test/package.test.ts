// The shipped tarball: one executable that runs with no Node.js anywhere on PATH.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { describe, it } from 'node:test';
import { REPO, tempDir } from './helpers/proc.ts';

const version = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).version as string;

describe('package', () => {
  it('builds a tarball whose firecampd runs a node without Node.js', async () => {
    // Built here from the current source: never trust a dist/ left from earlier.
    execFileSync('npm', ['run', '--silent', 'package'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
    const tarball = path.join(REPO, 'dist', `firecampd-${version}-linux-x64.tar.gz`);
    const listing = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
    assert.deepEqual(listing, [
      `firecampd-${version}/`,
      ...['INSTALL', 'firecampd', 'firecampd.env', 'firecampd.service'].map((f) => `firecampd-${version}/${f}`),
    ]);

    const root = tempDir('fc-pkg-');
    execFileSync('tar', ['-xzf', tarball, '-C', root]);
    const dir = path.join(root, `firecampd-${version}`);
    const unit = fs.readFileSync(path.join(dir, 'firecampd.service'), 'utf8');
    assert.match(unit, /^Restart=on-failure$/m);
    assert.match(unit, /^ExecStart=\/usr\/local\/bin\/firecampd --data-dir \/var\/lib\/firecampd$/m);
    assert.match(unit, /^EnvironmentFile=-\/etc\/firecampd\/firecampd\.env$/m);

    // An environment in which no node can be found: an empty PATH, a fresh HOME and cache.
    const emptyBin = path.join(root, 'bin');
    fs.mkdirSync(emptyBin);
    const env = { PATH: emptyBin, HOME: path.join(root, 'home'), XDG_CACHE_HOME: path.join(root, 'cache') };
    assert.throws(() => execFileSync('/bin/sh', ['-c', 'command -v node'], { env }), 'node must not be on this PATH');
    const exe = path.join(dir, 'firecampd');
    assert.equal(JSON.parse(execFileSync(exe, ['version', '--json'], { env, encoding: 'utf8' })).version, version);

    // The fencing watchdog is this same binary run again; with nothing to guard and its parent gone it exits.
    execFileSync(exe, ['watchdog', '--cluster', 'c', '--node', 'n', '--mount-root', path.join(root, 'mnt'), '--docker-host', `unix://${root}/none.sock`], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 10_000,
    });

    const dataDir = path.join(root, 'data');
    const daemon = spawn(exe, ['--data-dir', dataDir, '--bind', '127.0.0.1:0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => daemon.on('exit', (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the packaged daemon did not start in 20 s')), 20_000);
        readline.createInterface({ input: daemon.stderr }).on('line', (line) => {
          if (line.includes('"firecampd started"')) {
            clearTimeout(timer);
            resolve(Number(JSON.parse(line).bind.split(':').pop()));
          }
        });
        void exited.then((code) => reject(new Error(`the packaged daemon exited with ${code}`)));
      });
      // The CLI on the node talks to it through the root-only unix socket in the data dir: no token needed.
      assert.ok(port > 0);
      const run = (args: string[]) => execFileSync(exe, [...args, '--data-dir', dataDir, '--json'], { env, encoding: 'utf8' });
      assert.equal(JSON.parse(run(['health'])).status, 'ok');
      JSON.parse(run(['kv', 'put', 'packaged', 'yes']));
      assert.equal(JSON.parse(run(['kv', 'get', 'packaged'])).kvs[0].value, 'yes');
    } finally {
      daemon.kill('SIGTERM');
    }
    assert.equal(await exited, 0, 'SIGTERM stops it cleanly');
  });
});
