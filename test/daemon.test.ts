import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import https from 'node:https';
import { ApiClient } from '../src/client.ts';
import { resolveNodeConfig, zonal } from '../src/config.ts';
import { nodeClient, readCa } from './helpers/api.ts';
import { runCli, startDaemon, stopDaemon, tempDir, type Running } from './helpers/proc.ts';
import { pollUntil } from './helpers/wait.ts';

async function waitUntil(cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A request with no Authorization header at all. */
function rawNoToken(port: number, dir: string): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: '/v1/health', ca: readCa(dir), checkServerIdentity: () => undefined }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(body) }));
      })
      .on('error', reject);
  });
}

describe('daemon', () => {
  const running: Running[] = [];
  after(async () => {
    for (const r of running) await stopDaemon(r, 'SIGKILL');
  });

  it('serves health and metrics over HTTPS with a token, and locally over its unix socket', async () => {
    const dir = tempDir();
    const token = 'daemon-test-token-0123456789';
    const d = await startDaemon(['--data-dir', dir], undefined, { FIRECAMPD_TOKEN: token });
    running.push(d);
    for (const f of ['tls/node.key', 'tls/node.crt', 'tls/ca.crt', 'firecampd.sock']) {
      assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, `${f} must be private`);
    }

    const api = nodeClient(`127.0.0.1:${d.port}`, token, readCa(dir));
    after(() => api.close());
    // "ok" once the agent runs too (it starts after "firecampd started"); this test needs a reachable Docker engine.
    await waitUntil(async () => ((await api.raw('GET', '/v1/health')).json as { status: string }).status === 'ok', 20_000).catch(async () => {
      assert.fail(`health never became ok: ${JSON.stringify((await api.raw('GET', '/v1/health')).json)}`);
    });

    const metrics = await api.raw('GET', '/metrics').catch(() => null);
    assert.equal(metrics, null, 'metrics are text, not JSON');
    const text = (await api.download('/metrics')).toString();
    assert.match(text, /firecampd_process_cpu_user_seconds_total/);
    // Read once: a lone voter campaigns, and wins, as it starts, before it logs "firecampd started".
    assert.match(text, /^firecampd_raft_is_leader\{app="firecampd"\} 1$/m, 'a lone node leads');
    assert.match(text, /^firecampd_raft_term\{app="firecampd"\} [1-9]\d*$/m);

    const missing = await rawNoToken(d.port, dir);
    assert.equal(missing.status, 401);
    assert.match(missing.json.error.message, /missing token/);
    const wrongToken = await new ApiClient({ addr: `127.0.0.1:${d.port}`, token: 'wrong', ca: readCa(dir) }).raw('GET', '/v1/health');
    assert.equal(wrongToken.status, 401);
    assert.match((wrongToken.json as { error: { message: string } }).error.message, /unknown or revoked token/);
    assert.ok(!d.lines.some((l) => l.includes(token)), 'the token must never be logged');

    // The CLI on the same machine needs no token: it uses the data dir's socket.
    const cli = await runCli(['health', '--json', '--data-dir', dir]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).status, 'ok');

    const wrong = await runCli(['health', '--addr', `127.0.0.1:${d.port}`, '--token', 'wrong', '--data-dir', dir]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^firecampd: API token refused: unknown or revoked token/);

    // `api` still holds an idle keep-alive connection: the daemon must not wait for it to go
    // (it held the exit for a minute once), or systemd's TimeoutStopSec=30 kills it unclean.
    const stopping = Date.now();
    assert.equal(await stopDaemon(d, 'SIGTERM'), 0, 'SIGTERM must give a clean exit');
    assert.ok(Date.now() - stopping < 10_000, `SIGTERM to exit took ${Date.now() - stopping} ms with a client connected`);
    // The exit can be seen before the last lines of its stderr are read: wait for the line, not only for the exit.
    await pollUntil(
      () => d.lines.some((l) => l.includes('"stopped"')),
      (seen) => seen,
      { ms: 10_000, what: 'the "stopped" log line', context: () => d.lines.slice(-5).join('\n') },
    );
    assert.ok(!fs.existsSync(path.join(dir, 'firecampd.sock')), 'the socket is removed on exit');
  });

  it('says it is degraded, and why, while its agent cannot reach Docker; the CLI exits non-zero', async () => {
    const dir = tempDir();
    const d = await startDaemon(['--data-dir', dir, '--docker-host', 'unix:///nonexistent.sock']);
    running.push(d);
    // The agent's first attempt to reach Docker comes right after "firecampd started".
    let health: { status: string; agent: string; problems: string[] } | undefined;
    await waitUntil(async () => {
      const r = await runCli(['health', '--json', '--data-dir', dir]);
      health = JSON.parse(r.stdout);
      return health!.agent !== 'starting';
    });
    assert.equal(health!.status, 'degraded');
    assert.match(health!.agent, /^waiting for Docker: .*nonexistent\.sock/);
    assert.equal(health!.problems.length, 1, health!.problems.join('\n'));
    assert.match(
      health!.problems[0],
      /cannot reach its Docker engine at unix:\/\/\/nonexistent\.sock .*members cannot run on this node; start dockerd or pass --docker-host/,
    );

    // The API answers 200 (it serves); the CLI decides the exit code, for scripts.
    const api = new ApiClient({ dataDir: dir });
    after(() => api.close());
    assert.equal((await api.raw('GET', '/v1/health')).status, 200);
    const cli = await runCli(['health', '--data-dir', dir]);
    assert.equal(cli.code, 1, cli.stdout + cli.stderr);
    assert.match(cli.stdout, /^status +degraded$/m);
    assert.match(cli.stdout, /^agent +waiting for Docker: /m);
    assert.match(cli.stderr, /^firecampd: node .* is degraded: the agent cannot reach its Docker engine at unix:\/\/\/nonexistent\.sock/);
    const json = await runCli(['health', '--json', '--data-dir', dir]);
    assert.equal(json.code, 1, 'non-zero with --json too');
    assert.equal(JSON.parse(json.stdout).status, 'degraded');
    await stopDaemon(d);
  });

  it('keeps its identity and certificate across restarts, and refuses a second daemon on the same data dir', async () => {
    const dir = tempDir();
    const first = await startDaemon(['--data-dir', dir]);
    running.push(first);
    const id1 = JSON.parse(first.lines.find((l) => l.includes('firecampd started'))!).node_id;
    const second = await runCli(['--data-dir', dir, '--bind', '127.0.0.1:0']);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /in use by another firecampd/);
    assert.equal(await stopDaemon(first, 'SIGINT'), 0);

    const again = await startDaemon(['--data-dir', dir]);
    running.push(again);
    const id2 = JSON.parse(again.lines.find((l) => l.includes('firecampd started'))!).node_id;
    assert.equal(id2, id1);
    await stopDaemon(again);
  });

  it('rejects bad flags and unusable data dirs with one line and a non-zero exit', async () => {
    const bad = await runCli(['--no-such-flag']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Unknown argument/);
    assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/, 'no stack trace');

    const port = await runCli(['--bind', '127.0.0.1:99999', '--data-dir', tempDir()]);
    assert.equal(port.code, 1);
    assert.match(port.stderr, /--bind: port in "127.0.0.1:99999" must be 0-65535/);

    const file = path.join(tempDir(), 'a-file');
    fs.writeFileSync(file, 'x');
    const dd = await runCli(['--data-dir', file, '--bind', '127.0.0.1:0']);
    assert.equal(dd.code, 1);
    assert.match(dd.stderr, /data dir .* is not usable/);
    assert.equal(dd.stderr.trim().split('\n').length, 1);
  });

  it('names its providers by flag, and says what a bad provider flag should look like', () => {
    const c = resolveNodeConfig({ volumes: 'aws-ebs', staticIps: 'aws:ens5/20', dns: 'route53:Z0123ABC' });
    assert.deepEqual(
      [c.volumes, c.staticIps, c.dns],
      [{ kind: 'aws-ebs' }, { kind: 'aws', iface: 'ens5', prefix: 20 }, { kind: 'route53', hostedZoneId: 'Z0123ABC' }],
    );
    assert.ok(zonal(c), 'EBS volumes and AWS addresses keep members in their zone');
    const d = resolveNodeConfig({ volumes: 'loop:/shared/vols', staticIps: 'local:eth0' });
    assert.deepEqual(
      [d.volumes, d.staticIps, d.dns],
      [{ kind: 'loop', dir: '/shared/vols' }, { kind: 'local', iface: 'eth0', prefix: 24 }, { kind: 'embedded' }],
    );
    assert.equal(zonal(d), false);
    assert.throws(() => resolveNodeConfig({ volumes: 'ebs' }), /--volumes: must be "local", "loop:\/shared\/dir" or "aws-ebs"/);
    assert.throws(() => resolveNodeConfig({ staticIps: 'aws' }), /--static-ips: must be "none", "local:IFACE\[\/PREFIX\]" or "aws:IFACE\[\/PREFIX\]"/);
    assert.throws(() => resolveNodeConfig({ dns: 'route53' }), /--dns: must be "embedded" or "route53:HOSTED_ZONE_ID"/);
  });

  it('prints its version', async () => {
    const v = await runCli(['version', '--json']);
    assert.equal(v.code, 0);
    assert.match(JSON.parse(v.stdout).version, /^\d+\.\d+\.\d+/);
  });
});
