// The shipped tarball: one executable that runs with no Node.js anywhere on PATH.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { describe, it } from 'node:test';
import { REPO, tempDir } from './helpers/proc.ts';
import { pollUntil } from './helpers/wait.ts';

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

    // An environment in which no node can be found: a PATH with only the system tool the node needs before any member
    // runs (nft: its firewall table, which health checks), a fresh HOME and cache.
    const emptyBin = path.join(root, 'bin');
    fs.mkdirSync(emptyBin);
    const nft = execFileSync('/bin/sh', ['-c', 'command -v nft || true'], { encoding: 'utf8', env: { PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).trim();
    assert.ok(nft, 'nft is missing on this machine: install nftables');
    fs.symlinkSync(nft, path.join(emptyBin, 'nft'));
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
    const logged: string[] = [];
    try {
      const port = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the packaged daemon did not start in 20 s')), 20_000);
        readline.createInterface({ input: daemon.stderr }).on('line', (line) => {
          logged.push(line);
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
      // `health` exits 1 unless ok, and ok needs the agent running too, which comes after "firecampd started": an
      // answer from the node's Docker engine (the default one, unix:///var/run/docker.sock, as on a machine the
      // tarball is installed on; this test needs it, like daemon.test.ts) and a node lease. Waited for, as a script would.
      type Health = { code: number | null; stderr: string; json: { status: string; role: string; agent: string; problems: string[] } };
      const seen: Health[] = [];
      const health = await pollUntil(
        () =>
          new Promise<Health>((resolve, reject) =>
            execFile(exe, ['health', '--data-dir', dataDir, '--json'], { env, encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
              try {
                const h = { code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr, json: JSON.parse(stdout) as Health['json'] };
                seen.push(h);
                resolve(h);
              } catch {
                reject(new Error(`health printed no JSON (${err?.message ?? 'exit 0'}): ${stdout}${stderr}`));
              }
            }),
          ),
        (h) => h.json.status === 'ok',
        {
          ms: 30_000,
          what: "the packaged node's health to be ok (its agent running against the Docker engine at unix:///var/run/docker.sock)",
          every: 250,
          context: () => logged.slice(-20).join('\n'),
        },
      );
      assert.equal(health.code, 0, `exit 0 when ok: ${health.stderr}`);
      assert.deepEqual([health.json.role, health.json.agent, health.json.problems], ['leader', 'running', []]);
      // Before that, if it was asked while the agent started: degraded, saying why, and exit 1.
      for (const h of seen.filter((x) => x.json.status !== 'ok')) {
        assert.equal(h.json.status, 'degraded', JSON.stringify(h.json));
        assert.equal(h.code, 1, `exit 1 when degraded: ${JSON.stringify(h.json)}`);
        assert.ok(h.json.problems.length > 0, `a degraded node says why: ${JSON.stringify(h.json)}`);
      }
      JSON.parse(run(['kv', 'put', 'packaged', 'yes']));
      assert.equal(JSON.parse(run(['kv', 'get', 'packaged'])).kvs[0].value, 'yes');
    } finally {
      daemon.kill('SIGTERM');
    }
    assert.equal(await exited, 0, 'SIGTERM stops it cleanly');
  });
});
