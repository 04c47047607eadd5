// The controldb on clusters of real firecampd processes on loopback.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { nodeClient, readCa } from './helpers/api.ts';
import { LoopbackCluster, TOKEN } from './helpers/cluster.ts';
import fs from 'node:fs';
import path from 'node:path';
import { runCli, startDaemon, stopDaemon, tempDir } from './helpers/proc.ts';
import { pollUntil } from './helpers/wait.ts';

describe('controldb cluster', () => {
  const clusters: LoopbackCluster[] = [];
  after(async () => {
    for (const c of clusters) await c.stopAll();
  });

  it('joins three nodes, serves writes and linearizable reads from any node, survives the loss of the leader', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    const leader = await c.leaderIndex();
    const follower = (leader + 1) % 3;
    assert.equal((await c.put(follower, 'k', 'v1')).status, 200, 'a follower forwards writes to the leader');
    for (let i = 0; i < 3; i++) assert.equal(await c.get(i, 'k'), 'v1', `node ${i} reads its own write linearizably`);

    await c.kill(leader);
    const next = await c.leaderIndex();
    assert.notEqual(next, leader);
    const other = [0, 1, 2].find((i) => i !== leader && i !== next)!;
    assert.equal((await c.put(other, 'k', 'v2')).status, 200, 'writes go on with one node down');
    assert.equal(await c.get(next, 'k'), 'v2');

    await c.restart(leader);
    await c.waitFor(async () => (await c.get(leader, 'k', true)) === 'v2', 15_000, 'the restarted node to catch up');
    const members = (await c.status(leader)).members;
    assert.equal(members.filter((m) => m.role === 'voter').length, 3, 'it came back as itself');
  });

  it('refuses writes clearly, and gives no wrong answer, with two of three nodes down', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    assert.equal((await c.put(0, 'x', '1')).status, 200);
    // If node 0 follows, the put returned before its own replica applied it: wait for that, or nothing ever will once the others die.
    await pollUntil(
      () => c.get(0, 'x', true),
      (v) => v === '1',
      { ms: 20_000, what: "node 0's replica to hold x=1" },
    );
    await c.kill(1);
    await c.kill(2);
    // Node 0 may lead still; check-quorum makes it step down within an election timeout (ticks that a busy machine delays).
    await c.waitFor(async () => (await c.status(0)).role !== 'leader', 15_000, 'node 0 to know it has no quorum');
    const w = await c.put(0, 'x', '2');
    assert.equal(w.status, 503);
    assert.match(w.json.error.message, /no leader|quorum/);
    const r = await c.request(0, 'POST', '/v1/kv/range', { key: 'x' });
    assert.equal(r.status, 503, 'a linearizable read cannot be served without a quorum');
    const s = await c.request(0, 'POST', '/v1/kv/range', { key: 'x', serializable: true });
    assert.equal(s.json.kvs[0].value, '1', 'a serializable read may be served from the local replica');
  });

  it('keeps acknowledged writes through kill -9 of every node at once', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    const acked: string[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await c.put(i % 3, `durable/${i}`, String(i));
      if (r.status === 200) acked.push(`durable/${i}`);
    }
    assert.equal(acked.length, 40);
    await Promise.all([0, 1, 2].map((i) => c.kill(i)));
    for (let i = 0; i < 3; i++) await c.restart(i);
    await c.leaderIndex();
    // Some node leads; node 1 may not know it yet (or still replay its log), and its linearizable read waits only briefly.
    const r = await pollUntil(
      () => c.request(1, 'POST', '/v1/kv/range', { key: 'durable/', prefix: true }),
      (res) => res.status === 200,
      { ms: 20_000, what: 'node 1 to serve a linearizable read after the restart' },
    );
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.kvs.map((kv: { key: string }) => kv.key).sort(), acked.sort());
    // Each key was written once: on every replica, once it has caught up, each has version 1 and the same
    // mod_revision. A restarted node that applied an entry a second time (its state machine was ahead of the commit
    // index its log had stored) would show a version 2 and revisions shifted from there on.
    const shape = (kvs: { key: string; version: number; mod_revision: number }[]) => kvs.map((kv) => `${kv.key}@${kv.mod_revision}v${kv.version}`).sort();
    const truth = shape(r.json.kvs);
    assert.ok(
      r.json.kvs.every((kv: { version: number }) => kv.version === 1),
      `each key at version 1: ${truth.join(' ')}`,
    );
    for (let i = 0; i < 3; i++) {
      await pollUntil(
        () => c.request(i, 'POST', '/v1/kv/range', { key: 'durable/', prefix: true, serializable: true }),
        (res) => res.status === 200 && JSON.stringify(shape(res.json.kvs)) === JSON.stringify(truth),
        { ms: 20_000, what: `node ${i}'s own replica to hold each key once, as the linearizable read did (${truth.slice(-2).join(' ')}…)` },
      );
    }
  });

  it('expires leases that are not kept alive, keeps those that are, and watches see it all in order', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    const lease = async (ttl: number) => (await c.request(0, 'POST', '/v1/lease/grant', { ttl })).json.id as number;
    const from = (await c.request(1, 'POST', '/v1/kv/range', { key: 'node/' })).json.revision + 1;
    // Each lease is used, and the kept one kept alive, right after it is granted: a busy machine's pauses between
    // requests could outlast a short TTL. The kept one is granted first, so it outlives its TTL only by its keepalives.
    const kept = await lease(2);
    const keepalive = setInterval(() => void c.request(2, 'POST', '/v1/lease/keepalive', { id: kept }), 300);
    try {
      const dying = await lease(2);
      assert.equal((await c.request(1, 'POST', '/v1/kv/put', { key: 'node/a', value: 'up', lease: dying })).status, 200);
      assert.equal((await c.request(2, 'POST', '/v1/kv/put', { key: 'node/b', value: 'up', lease: kept })).status, 200);
      await c.waitFor(async () => (await c.get(0, 'node/a')) === undefined, 10_000, 'the unkept lease to expire');
      assert.equal(await c.get(0, 'node/b'), 'up', 'the kept lease is alive');
    } finally {
      clearInterval(keepalive);
    }
    // A watch from the revision before the puts replays them and the expiry, in order (within 20 s).
    const stop = new AbortController();
    const giveUp = setTimeout(() => stop.abort(), 20_000);
    const lines = c.client(2).stream(`/v1/watch?key=node/&prefix=true&from=${from}`, stop.signal);
    let text = '';
    while ((text.match(/"type"/g) ?? []).length < 3) {
      const next = await lines.next().catch((err: Error) => assert.fail(`the watch stopped (${err.message}) after: ${text || 'nothing'}`));
      assert.ok(!next.done, `the watch ended after: ${text || 'nothing'}`);
      text += next.value + '\n';
    }
    clearTimeout(giveUp);
    stop.abort();
    const events = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.events)
      .flatMap((l) => l.events.map((e: { type: string; kv: { key: string } }) => `${l.revision}:${e.type}:${e.kv.key}`));
    assert.deepEqual(
      events.map((e: string) => e.split(':').slice(1).join(':')),
      ['put:node/a', 'put:node/b', 'delete:node/a'],
    );
    const revs = events.map((e: string) => Number(e.split(':')[0]));
    assert.deepEqual(
      revs,
      [...revs].sort((a, b) => a - b),
    );
  });

  it('keeps a watch on a follower whole across a change of leader: no event missed or repeated', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    const leader = await c.leaderIndex();
    const watcher = (leader + 1) % 3;
    const writer = (leader + 2) % 3;
    const stop = new AbortController();
    const lines = c.client(watcher).stream('/v1/watch?key=w/&prefix=true', stop.signal);
    const seen: { revision: number; value: string }[] = [];
    const pump = (async () => {
      for await (const line of lines) {
        const msg = JSON.parse(line);
        for (const e of msg.events ?? []) seen.push({ revision: msg.revision, value: e.kv.value });
      }
    })();
    const acked: string[] = [];
    for (let i = 0; i < 60; i++) {
      if (i === 20) await c.kill(leader); // the watch goes on through the election
      const r = await c.put(writer, 'w/k', String(i));
      if (r.status === 200) acked.push(String(i));
    }
    // Waited for value by value: a write that failed may have applied too, so a count of events proves nothing.
    await pollUntil(
      () => acked.filter((v) => !seen.some((e) => e.value === v)),
      (missing) => missing.length === 0,
      { ms: 20_000, what: 'the watch to deliver an event for every acknowledged write (last seen: those still missing)' },
    );
    stop.abort();
    await pump.catch(() => {});
    const values = seen.map((e) => e.value);
    for (const v of acked) assert.ok(values.includes(v), `event for acknowledged write ${v}`);
    assert.equal(new Set(values).size, values.length, 'no event delivered twice');
    const revs = seen.map((e) => e.revision);
    assert.deepEqual(
      revs,
      [...revs].sort((a, b) => a - b),
      'in revision order',
    );
  });

  it('runs five nodes and keeps serving with two of them killed', async () => {
    const c = await LoopbackCluster.start(5);
    clusters.push(c);
    const leader = await c.leaderIndex();
    const victims = [0, 1, 2, 3, 4].filter((i) => i !== leader).slice(0, 2);
    for (const v of victims) await c.kill(v);
    const alive = [0, 1, 2, 3, 4].filter((i) => !victims.includes(i));
    for (const i of alive) assert.equal((await c.put(i, `five/${i}`, 'ok')).status, 200, `write through node ${i}`);
    for (const i of alive) assert.equal(await c.get(i, `five/${alive[0]}`), 'ok');
  });

  it('does not expire a kept-alive lease when the leader changes', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    const leader = await c.leaderIndex();
    const other = (leader + 1) % 3;
    const id = (await c.request(other, 'POST', '/v1/lease/grant', { ttl: 3 })).json.id as number;
    assert.equal((await c.request(other, 'POST', '/v1/kv/put', { key: 'held', value: 'yes', lease: id })).status, 200);
    let keeping = true;
    const keeper = (async () => {
      while (keeping) {
        await c.request(other, 'POST', '/v1/lease/keepalive', { id }).catch(() => {});
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    await c.kill(leader);
    await c.leaderIndex();
    await new Promise((r) => setTimeout(r, 4500)); // longer than the TTL, across the election
    assert.equal(await c.get(other, 'held'), 'yes', 'the lease outlived the old leader');
    keeping = false;
    await keeper;
    await c.waitFor(async () => (await c.get(other, 'held')) === undefined, 10_000, 'the lease to expire once no longer kept alive');
  });

  it('answers bad requests with 4xx JSON that says what is wrong, and keeps serving', async () => {
    const c = await LoopbackCluster.start(1);
    clusters.push(c);
    const cases: [unknown, number, RegExp][] = [
      [Buffer.from('{not json'), 400, /not valid JSON/],
      [{ key: 'a', value: 'b', bogus: 1 }, 400, /bogus/],
      [{ key: '', value: 'b' }, 400, /key must not be empty/],
      [{ key: 'a', value: 'x'.repeat(300 * 1024) }, 400, /value is larger than/],
      [{ key: 'a', value: 7 }, 400, /value/],
    ];
    for (const [body, status, msg] of cases) {
      const r = await c.request(0, 'POST', '/v1/kv/put', body);
      assert.equal(r.status, status, JSON.stringify(r.json));
      assert.match(r.json.error.message, msg);
    }
    const big = await c.request(0, 'POST', '/v1/kv/put', { key: 'a', value: 'x'.repeat(2 << 20) });
    assert.equal(big.status, 413);
    assert.equal((await c.put(0, 'still', 'serving')).status, 200);
    const txn = await c.request(0, 'POST', '/v1/kv/txn', { compare: [{ key: 'a', target: 'version', op: '=', value: 'x' }] });
    assert.equal(txn.status, 400);
    assert.match(txn.json.error.message, /compare on version needs a number/);
  });

  it('has a CLI for kv and cluster with tables and --json', async () => {
    const c = await LoopbackCluster.start(1);
    clusters.push(c);
    const env = { FIRECAMPD_TOKEN: 'test-cluster-token' };
    const addr = ['--addr', `127.0.0.1:${c.nodes[0].port}`, '--ca-file', path.join(c.nodes[0].dir, 'tls', 'ca.crt')];
    assert.equal((await runCli(['kv', 'put', 'cli/a', 'hello', ...addr], env)).code, 0);
    const get = await runCli(['kv', 'get', 'cli/a', '--json', ...addr], env);
    assert.equal(JSON.parse(get.stdout).kvs[0].value, 'hello');
    const table = await runCli(['kv', 'get', 'cli/', '--prefix', ...addr], env);
    assert.match(table.stdout, /^KEY\s+VALUE\s+MOD_REV\s+VERSION\s+LEASE\ncli\/a\s+hello/);
    const missing = await runCli(['kv', 'get', 'cli/none', ...addr], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /key not found: cli\/none/);
    const members = await runCli(['cluster', 'members', '--json', ...addr], env);
    assert.equal(JSON.parse(members.stdout)[0].role, 'voter');
  });

  it('saves a snapshot and restores it as a new one-node cluster with the same keys and revision', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    for (let i = 0; i < 20; i++) await c.put(i % 3, `snap/${i}`, String(i));
    const env = { FIRECAMPD_TOKEN: 'test-cluster-token' };
    const file = path.join(tempDir(), 'backup.db');
    const save = await runCli(['snapshot', 'save', file, '--addr', `127.0.0.1:${c.nodes[1].port}`, '--data-dir', c.nodes[1].dir, '--json'], env);
    assert.equal(save.code, 0, save.stderr);
    assert.ok(fs.statSync(file).size > 0);
    const revision = (await c.request(0, 'POST', '/v1/kv/range', { key: 'snap/', prefix: true })).json.revision;

    const dir = path.join(tempDir(), 'restored');
    const restore = await runCli(['snapshot', 'restore', file, '--data-dir', dir, '--json']);
    assert.equal(restore.code, 0, restore.stderr);
    assert.equal(JSON.parse(restore.stdout).revision, revision);
    const again = await runCli(['snapshot', 'restore', file, '--data-dir', dir]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds a node/);

    // No Docker for it: on a machine with Docker the agent would start and write its alive key at a moment of its own,
    // and the revision checked below would be one more, or not, depending on when.
    const node = await startDaemon(['--data-dir', dir, '--docker-host', `unix://${path.join(dir, 'no-docker.sock')}`], undefined, {});
    try {
      // The restored cluster keeps the old one's CA and tokens.
      const api = nodeClient(`127.0.0.1:${node.port}`, TOKEN, readCa(dir));
      after(() => api.close());
      const q = async (p: string, body: unknown): Promise<any> => (await api.raw('POST', p, body)).json;
      const range = await pollUntil(
        () => q('/v1/kv/range', { key: 'snap/', prefix: true }),
        (res) => Array.isArray(res?.kvs),
        { ms: 20_000, what: 'the restored node to serve a range' },
      );
      assert.equal(range.kvs.length, 20);
      assert.deepEqual(
        range.kvs.map((kv: { value: string }) => Number(kv.value)).sort((a: number, b: number) => a - b),
        [...Array(20).keys()],
      );
      // The store's revision goes on from the snapshot's (the new node then records itself, one more).
      assert.ok(range.revision >= revision && range.revision <= revision + 1, `revision ${range.revision} after restoring ${revision}`);
      const status = (await api.raw('GET', '/v1/cluster/status')).json as { members: { role: string }[] };
      assert.equal(status.members.filter((m: { role: string }) => m.role === 'voter').length, 1, 'a new one-node cluster');
      assert.ok((await q('/v1/kv/put', { key: 'after', value: 'restore' })).revision > range.revision);
    } finally {
      await stopDaemon(node);
    }
  });

  it('lets the leader leave: it hands over leadership and the other two carry on', async () => {
    const c = await LoopbackCluster.start(3);
    clusters.push(c);
    const leader = await c.leaderIndex();
    const r = await c.request(leader, 'POST', '/v1/cluster/leave', {});
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const code = await c.nodes[leader].running!.exited;
    assert.equal(code, 0, 'the node exits after leaving');
    c.nodes[leader].running = null;
    const next = await c.leaderIndex();
    const s = await c.status(next);
    assert.equal(s.members.filter((m) => m.role === 'voter').length, 2);
    assert.equal((await c.put(next, 'after', 'leave')).status, 200);
  });
});
