import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli, startDaemon, stopDaemon, tempDir, type Running } from './helpers/proc.ts';

describe('daemon', () => {
  const running: Running[] = [];
  after(async () => {
    for (const r of running) await stopDaemon(r, 'SIGKILL');
  });

  it('serves health and metrics with the token and refuses requests without it', async () => {
    const dir = tempDir();
    const d = await startDaemon(['--data-dir', dir]);
    running.push(d);
    const token = fs.readFileSync(path.join(dir, 'token'), 'utf8').trim();
    assert.equal(fs.statSync(path.join(dir, 'token')).mode & 0o777, 0o600, 'token file must be private');

    const base = `http://127.0.0.1:${d.port}`;
    const ok = await fetch(`${base}/v1/health`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { status: string }).status, 'ok');

    const metrics = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(metrics.status, 200);
    const text = await metrics.text();
    assert.match(text, /firecampd_process_cpu_user_seconds_total/);
    assert.match(text, /^firecampd_raft_is_leader\{app="firecampd"\} 1$/m, 'a lone node leads');
    assert.match(text, /^firecampd_raft_term\{app="firecampd"\} [1-9]\d*$/m);

    for (const headers of [{}, { authorization: "Bearer wrong" }] as Record<string, string>[]) {
      const res = await fetch(`${base}/v1/health`, { headers });
      assert.equal(res.status, 401);
      const body = (await res.json()) as { error: { message: string } };
      assert.match(body.error.message, /token/);
    }
    assert.ok(!d.lines.some((l) => l.includes(token)), 'the token must never be logged');

    // The CLI on the same machine finds the token in the data dir.
    const cli = await runCli(['health', '--json', '--addr', `127.0.0.1:${d.port}`, '--data-dir', dir]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).status, 'ok');

    const noToken = await runCli(['health', '--addr', `127.0.0.1:${d.port}`, '--token', 'wrong']);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /^firecampd: missing or wrong token/);

    assert.equal(await stopDaemon(d, 'SIGTERM'), 0, 'SIGTERM must give a clean exit');
    assert.ok(d.lines.some((l) => l.includes('"stopped"')));
  });

  it('keeps its identity and token across restarts, and refuses a second daemon on the same data dir', async () => {
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

  it('prints its version', async () => {
    const v = await runCli(['version', '--json']);
    assert.equal(v.code, 0);
    assert.match(JSON.parse(v.stdout).version, /^\d+\.\d+\.\d+/);
  });
});
