// The cluster's defences: who may join, who may speak Raft, who may use the API.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ApiClient } from '../src/client.ts';
import { createCa, generateKeyPair, issueNodeCert } from '../src/security/pki.ts';
import { LoopbackCluster, TOKEN } from './helpers/cluster.ts';
import { runCli, tempDir } from './helpers/proc.ts';
import { pollUntil } from './helpers/wait.ts';

/** Run a node that tries to join and must fail; returns its stderr. */
async function failedJoin(target: number, token: string): Promise<string> {
  const r = await runCli(['--data-dir', tempDir('fc-intruder-'), '--bind', '127.0.0.1:0', '--join', `127.0.0.1:${target}`], { FIRECAMPD_TOKEN: token });
  assert.equal(r.code, 1, `the join must fail:\n${r.stderr}`);
  return r.stderr;
}

interface Upgrade {
  status?: number;
  /** Set when the socket opened and the node closed it while watched (a second unless `watchMs` says). */
  closeCode?: number;
  error?: string;
}

/** Try to open the Raft WebSocket with the given TLS material; an open socket is watched `watchMs` for the node to close it. */
function raftUpgrade(port: number, opts: { ca: string; cert?: string; key?: string; node: string; token?: string; watchMs?: number }): Promise<Upgrade> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/raft`, {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      checkServerIdentity: (() => undefined) as never,
      headers: { 'x-firecampd-node': opts.node, ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
      handshakeTimeout: 15_000,
    });
    ws.on('open', () => {
      const timer = setTimeout(() => {
        ws.terminate();
        resolve({ status: 101 });
      }, opts.watchMs ?? 1000);
      ws.on('close', (code) => {
        clearTimeout(timer);
        resolve({ status: 101, closeCode: code });
      });
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode });
      ws.terminate();
    });
    ws.on('error', (err) => resolve({ error: err.message }));
  });
}

function tlsFiles(dir: string): { ca: string; cert: string; key: string } {
  const r = (f: string) => fs.readFileSync(path.join(dir, 'tls', f), 'utf8');
  return { ca: r('ca.crt'), cert: r('node.crt'), key: r('node.key') };
}

describe('security', () => {
  let a: LoopbackCluster;
  let b: LoopbackCluster;
  before(async () => {
    a = await LoopbackCluster.start(3);
    b = await LoopbackCluster.start(1);
  });
  after(async () => {
    await a?.stopAll();
    await b?.stopAll();
  });

  const voters = async () => (await a.status(0)).members.map((m) => `${m.id}:${m.role}`).sort();
  /** Tokens are checked against each node's own replica, and making one waits for no replica but the leader's: wait until node i holds it. */
  const tokenOn = (i: number, id: string) =>
    pollUntil(
      async () => ((await a.request(i, 'GET', '/v1/tokens')).json.tokens as { id: string }[]).map((t) => t.id),
      (ids) => ids.includes(id),
      { ms: 20_000, what: `node ${i}'s replica to hold token ${id}` },
    );

  it('refuses to let in a node with a wrong, foreign, expired or revoked join token, or behind a forged CA', async () => {
    const before = await voters();
    const port = a.nodes[0].port;
    const good = a.join;
    const [, digest, idSecret] = /^FCJ1-([0-9a-f]{64})-(.+)$/.exec(good)!;
    const wrongSecret = `FCJ1-${digest}-${idSecret.split('.')[0]}.${randomBytes(24).toString('base64url')}`;
    assert.match(await failedJoin(port, wrongSecret), /refused to let this node join: join token refused: unknown or revoked token/);

    // Cluster B's token pointed at cluster A: the CA A presents is not the one the token pins.
    const foreign = b.join || (b.join = (await b.request(0, 'GET', '/v1/tokens/join')).json.token);
    assert.match(await failedJoin(port, foreign), /presented a CA whose digest .* is not the token's .*man in the middle/);
    // Cluster A's token sent to a man in the middle (here: cluster B's node) is never sent on: B's CA does not match.
    assert.match(await failedJoin(b.nodes[0].port, good), /presented a CA whose digest/);
    // A client that skips the CA check and sends B's token to A anyway is refused by A.
    const direct = await new ApiClient({ addr: `127.0.0.1:${port}`, token: foreign, ca: a.ca }).raw('POST', '/v1/cluster/join', {});
    assert.equal(direct.status, 401);
    assert.match((direct.json as { error: { message: string } }).error.message, /belongs to another cluster/);

    const expiring = (await a.request(0, 'POST', '/v1/tokens', { kind: 'join', ttl: 1 })).json as { id: string; token: string };
    await tokenOn(0, expiring.id); // refused below for its age, not as a token node 0 does not know yet
    await new Promise((r) => setTimeout(r, 1500)); // the point: past the token's TTL of a second
    assert.match(await failedJoin(port, expiring.token), /the token has expired/);

    const revoked = (await a.request(0, 'POST', '/v1/tokens', { kind: 'join' })).json as { id: string; token: string };
    await tokenOn(0, revoked.id); // refused below because it was revoked, not because node 0 never had it
    const revoke = await a.request(1, 'POST', '/v1/tokens/revoke', { id: revoked.id });
    assert.equal(revoke.status, 200);
    // A revoke returns once every node applied it, and names any that did not: then node 0 refuses the token at once.
    assert.deepEqual(revoke.json.unconfirmed, [], 'every node confirmed the revocation');
    assert.match(await failedJoin(port, revoked.token), /unknown or revoked token/);

    assert.match(await failedJoin(port, TOKEN), /the token given is not a join token/);
    const api = (await a.request(0, 'POST', '/v1/tokens', { kind: 'api' })).json as { token: string };
    assert.match(await failedJoin(port, api.token), /that is an API token \(FCA1-…\); joining needs a join token/);
    assert.deepEqual(await voters(), before, 'the cluster is unchanged');
    assert.equal((await a.put(0, 'after/intruders', 'ok')).status, 200, 'and keeps serving');
  });

  it('speaks Raft only with member nodes holding a certificate from the cluster CA', async () => {
    const port = a.nodes[0].port;
    const peer = tlsFiles(a.nodes[1].dir);
    const peerId = (await a.status(1)).node;
    const noCert = await raftUpgrade(port, { ca: a.ca, node: peerId, token: TOKEN });
    assert.equal(noCert.status, 401, 'an API token does not open the Raft port');

    const forgedCa = await createCa('forged');
    const kp = generateKeyPair();
    const forgedCert = await issueNodeCert(forgedCa, { nodeId: peerId, publicKeyPem: kp.publicKeyPem, hosts: [] });
    assert.equal((await raftUpgrade(port, { ca: a.ca, cert: forgedCert, key: kp.keyPem, node: peerId })).status, 401, 'a forged CA is refused');
    // Kept open for the second it is watched (the point: the node does not hang up on a member)…
    assert.deepEqual(await raftUpgrade(port, { ...peer, node: peerId }), { status: 101 }, 'a member with its own certificate is let in');
    // …but closed, however busy the machine: watched until the node closes it (an answer comes at once), within 15 s.
    assert.deepEqual(
      await raftUpgrade(port, { ...peer, node: 'someone-else', watchMs: 15_000 }),
      { status: 101, closeCode: 1008 },
      'but may not speak for another node',
    );
  });

  it('closes garbage and malformed TLS on the peer port and keeps serving', async () => {
    const port = a.nodes[0].port;
    const termBefore = (await a.request(0, 'GET', '/v1/cluster/status')).json.term as number;
    const closed = (write: (s: net.Socket) => void) =>
      new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => write(s));
        s.on('error', () => {});
        s.on('close', () => resolve());
        s.setTimeout(15_000, () => s.destroy(new Error('the node kept a garbage connection open')));
      });
    // All at once: a connection that stops mid-record is closed by the handshake timeout (10 s), not at once.
    await Promise.all([
      closed((s) => s.write('GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n')),
      ...Array.from({ length: 50 }, (_, i) => [
        // A TLS record header (handshake, TLS 1.0) followed by random bytes: a malformed ClientHello.
        closed((s) => s.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x01]), randomBytes(300)]))),
        closed((s) => s.write(randomBytes(1 + ((i * 37) % 2000)))),
      ]).flat(),
    ]);

    // A member's certificate, then a few thousand random frames: the codec drops them all.
    const peer = tlsFiles(a.nodes[1].dir);
    const ws = new WebSocket(`wss://127.0.0.1:${port}/v1/raft`, {
      ...peer,
      checkServerIdentity: (() => undefined) as never,
      headers: { 'x-firecampd-node': (await a.status(1)).node },
    });
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    for (let i = 0; i < 3000; i++) ws.send(randomBytes(1 + (i % 512)));
    // The node answers a ping only after it has read every frame sent before it: then it has taken them all in (or hung up).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong (nor close) within 30 s of the random frames')), 30_000);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      ws.once('pong', done).once('close', done);
      if (ws.readyState === WebSocket.OPEN) ws.ping();
    });
    ws.terminate();

    assert.equal((await a.put(0, 'after/garbage', 'ok')).status, 200);
    const st = (await a.request(0, 'GET', '/v1/cluster/status')).json;
    assert.equal(st.term, termBefore, 'no election was caused');
    // ok also needs node 0's agent running, which it may not be yet this early: it starts after the node does, once
    // the machine's Docker engine (DOCKER_HOST, or unix:///var/run/docker.sock: this test needs it) answers. Waited for.
    const health = await pollUntil(
      async () => (await a.request(0, 'GET', '/v1/health')).json as { status: string; problems: string[] },
      (h) => h.status === 'ok',
      { ms: 30_000, what: `node 0 to say it is ok (its agent running against ${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'})` },
    );
    assert.equal(health.status, 'ok');
    assert.deepEqual(health.problems, []);
  });

  it('refuses API requests without or with a wrong token, rate-limits the guesser, and refuses a revoked token at once on every node', async () => {
    const port = a.nodes[2].port;
    const created = (await a.request(0, 'POST', '/v1/tokens', { kind: 'api', description: 'ci' })).json as { id: string; token: string };
    assert.match(created.token, /^FCA1-[0-9a-f]{64}-[0-9a-f]{16}\./);
    for (let i = 0; i < a.nodes.length; i++) await tokenOn(i, created.id);
    const users = a.nodes.map((n) => new ApiClient({ addr: `127.0.0.1:${n.port}`, token: created.token, keepAlive: true })); // CA pinned from the token
    after(() => users.forEach((u) => u.close()));
    for (const u of users) assert.equal((await u.raw('GET', '/v1/health')).status, 200);
    // On a machine that is a node of another cluster, the token's CA digest wins over that node's CA.
    const elsewhere = new ApiClient({ addr: `127.0.0.1:${a.nodes[0].port}`, token: created.token, dataDir: b.nodes[0].dir });
    assert.equal((await elsewhere.raw('GET', '/v1/health')).status, 200);
    elsewhere.close();

    const list = (await a.request(1, 'GET', '/v1/tokens')).json.tokens as { id: string; kind: string }[];
    assert.ok(list.some((t) => t.id === created.id && t.kind === 'api'));
    assert.ok(!JSON.stringify(list).includes(created.token.split('.').pop()!), 'list never shows secrets');

    assert.equal((await a.request(1, 'POST', '/v1/tokens/revoke', { id: created.id })).json.unconfirmed.length, 0);
    const after1 = await Promise.all(users.map((u) => u.raw('GET', '/v1/health')));
    assert.deepEqual(
      after1.map((r) => r.status),
      [401, 401, 401],
      'refused on every node as soon as revoke returned',
    );

    const guesser = new ApiClient({ addr: `127.0.0.1:${port}`, token: 'guess', ca: a.ca, keepAlive: true });
    after(() => guesser.close());
    const statuses: number[] = [];
    for (let i = 0; i < 25; i++) statuses.push((await guesser.raw('GET', '/v1/health')).status);
    assert.equal(statuses[0], 401);
    assert.equal(statuses.at(-1), 429, `after 20 failures a minute the address is refused outright: ${statuses.join(',')}`);

    for (const n of a.nodes) {
      for (const l of n.running!.lines) {
        assert.ok(!l.includes(created.token.split('.').pop()!) && !l.includes(a.join.split('.').pop()!), `a secret in the log: ${l}`);
      }
    }
  });

  it('never serves the cluster secrets through the KV API', async () => {
    const all = (await a.request(0, 'POST', '/v1/kv/range', { key: '/', prefix: true })).json;
    assert.ok(all.kvs.length > 0);
    assert.ok(!all.kvs.some((kv: { key: string }) => kv.key.startsWith('/_cluster/secret/')));
    assert.ok(!JSON.stringify(all).includes('PRIVATE KEY'));
    assert.equal((await a.request(0, 'POST', '/v1/kv/range', { key: '/_cluster/secret/ca' })).status, 403);
    assert.equal((await a.request(0, 'POST', '/v1/kv/put', { key: '/_cluster/secret/ca', value: 'x' })).status, 403);
    assert.equal((await a.request(0, 'POST', '/v1/kv/delete', { key: '/', prefix: true })).status, 403);
  });

  it("refuses a removed node's certificate from then on", async () => {
    const victim = a.nodes[2];
    const files = tlsFiles(victim.dir);
    // (Asked of node 0: node 2 is still refusing this address after the guessing above.)
    const id = (await a.status(0)).members.find((m) => (m as { name?: string }).name === 'n2')!.id;
    await a.kill(2);
    const removed = await a.request(0, 'POST', '/v1/cluster/remove', { id });
    assert.equal(removed.status, 200, JSON.stringify(removed.json));
    // Node 0 checks certificates against its own replica, which applies the removal a moment after the leader answered.
    await pollUntil(
      () => a.get(0, `/_cluster/removed/${id}`, true),
      (at) => at !== undefined,
      { ms: 20_000, what: `node 0's replica to record the removal of ${id}` },
    );
    const port = a.nodes[0].port;
    assert.equal((await raftUpgrade(port, { ...files, node: id })).status, 401, 'Raft refused');
    const asNode = new ApiClient({ addr: `127.0.0.1:${port}`, ca: files.ca, cert: { certPem: files.cert, keyPem: files.key } });
    const r = await asNode.raw('GET', '/v1/cluster/status');
    assert.equal(r.status, 401, 'API refused');
    assert.match((r.json as { error: { message: string } }).error.message, /was removed from the cluster/);
    asNode.close();
  });
});
