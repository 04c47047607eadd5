// End to end on the test bed: a new leader finishes a Redis cluster create
// that the old one began; `firecampd service create` gives a Redis
// primary with a replica, both refusing a client without the service's
// password (`firecampd service credentials`) and serving one with it; a
// client writes 10,000 keys by the members' names;
// the node running the primary dies (every process in its namespace killed,
// its link down, its mounts gone, as a dead machine's would be); the primary
// comes back on another node with its data, address and name.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { TestBed } from './bed/bed.ts';
import { docker } from './bed/docker.ts';
import { runCli, tempDir } from './helpers/proc.ts';
import { serviceCaFile } from './helpers/service-bed.ts';
import { pollUntil } from './helpers/wait.ts';

const execFileAsync = promisify(execFile);
const LEASE_TTL = 8;
const KEYS = 10_000;

describe('service', { timeout: 600_000 }, () => {
  let bed: TestBed;
  /** The cluster CA, as `service ca` prints it: redis-cli checks the members' certificates against it. */
  let clusterCa = '';
  const ids: string[] = [];
  let cli: (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;

  const waitFor = async (cond: () => Promise<boolean>, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!(await cond().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${bed.logs(10)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  /**
   * redis-cli in the client namespace, with `password` (none: without one). The password goes in REDISCLI_AUTH,
   * never on the command line (which a failure's message would show). redis-cli exits 0 on an error reply too:
   * callers compare what it printed. Over TLS, checking the member's certificate against the cluster CA (what
   * `service ca` prints), unless `plaintext`.
   */
  const redis = async (ip: string, password: string | null, args: string[], input?: string, plaintext = false): Promise<string> => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.REDISCLI_AUTH;
    if (password !== null) env.REDISCLI_AUTH = password;
    const tls = plaintext ? [] : ['--tls', '--cacert', clusterCa];
    const p = execFileAsync('nsenter', [`--net=/var/run/netns/${bed.client!.ns}`, 'redis-cli', ...tls, '-h', ip, '-p', '6379', ...args], {
      encoding: 'utf8',
      timeout: 20_000,
      env,
    });
    if (input !== undefined) p.child.stdin!.end(input);
    return (await p).stdout.trim();
  };

  const resolve = async (node: number, name: string): Promise<string> => {
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([`${bed.nodes[node].ip}:53`]);
    return (await r.resolve4(name))[0];
  };
  /** The same, once node `node` answers for the name: its replica may get the record a moment after another node saw the service ACTIVE. */
  const resolved = (node: number, name: string): Promise<string> =>
    pollUntil(
      () => resolve(node, name),
      () => true,
      { ms: 20_000, what: `node ${node}'s DNS server to answer for ${name}`, context: () => bed.logs(10) },
    );

  /** Every write the member acknowledged is on its disk: with appendfsync always, the next write fsyncs its whole AOF, earlier writes too. */
  const fsyncAof = async (ip: string, password: string) => {
    const policy = (await redis(ip, password, ['CONFIG', 'GET', 'appendfsync'])).split('\n')[1];
    assert.equal(await redis(ip, password, ['CONFIG', 'SET', 'appendfsync', 'always']), 'OK');
    assert.equal(await redis(ip, password, ['SET', 'key:0', 'value-0']), 'OK'); // a key the test wrote already, with the same value
    assert.equal(await redis(ip, password, ['CONFIG', 'SET', 'appendfsync', policy]), 'OK');
  };

  interface Credentials {
    name: string;
    credentials: { secret: string; user?: string; describe: string; value: string }[];
  }
  /** The one credential of a Redis service: the password of user default, 32 characters of base64url. */
  const redisPassword = (c: Credentials, name: string): string => {
    assert.equal(c.name, name);
    assert.deepEqual(
      c.credentials.map((x) => [x.secret, x.user]),
      [['password', 'default']],
      JSON.stringify(c.credentials.map((x) => ({ ...x, value: '…' }))),
    );
    assert.match(c.credentials[0].value, /^[A-Za-z0-9_-]{32}$/, 'a generated password');
    return c.credentials[0].value;
  };

  const service = async (via: number) => JSON.parse((await cli(['service', 'get', 'cache', '--json', '--addr', bed.nodes[via].addr])).stdout);

  before(async () => {
    bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true });
    for (let i = 0; i < 3; i++) {
      await bed.start(i, bed.serviceNodeArgs(LEASE_TTL));
    }
    const caFile = path.join(tempDir(), 'ca.crt');
    fs.copyFileSync(path.join(bed.nodes[0].dataDir, 'tls', 'ca.crt'), caFile);
    clusterCa = caFile;
    cli = (args) => runCli([...args, '--ca-file', caFile], { FIRECAMPD_TOKEN: bed.token });
    ids.push(...(await bed.nodeIds()));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('finishes a Redis cluster create that the leader began when the leader stops midway', async (t) => {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const leaderSeenBy = (i: number) =>
      pollUntil(
        async () => ids.indexOf((await status(i)).leader),
        (l) => l >= 0,
        { ms: 30_000, what: `node ${i} to know the leader`, context: () => bed.logs(10) },
      );
    let leader = await leaderSeenBy(0);
    let other = [0, 1, 2].find((i) => i !== leader)!;
    // The agents hold their leases (placement needs live nodes) before the clock starts.
    await waitFor(
      async () => (await bed.api(other, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3,
      30_000,
      'the agents',
    );
    const r = await bed.api(other, 'POST', '/v1/services', { type: 'redis', name: 'early', redis: { shards: 3, replicasPerShard: 1 }, volumeSizeMiB: 32 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    // Midway: the members are placed and the leader has begun forming the Redis cluster.
    const get = async () =>
      (await bed.api(other, 'GET', '/v1/service?name=early', undefined, 2000)).json as {
        status: string;
        message: string;
        members: { name: string; node: string; epoch: number; ip: string; state: string }[];
      };
    let seen = await get();
    const deadline = Date.now() + 60_000;
    while (!(seen.status === 'INITIALIZING' && /introducing|learn of every other|attaching|cluster_state|see every shard/.test(seen.message))) {
      assert.notEqual(seen.status, 'ACTIVE', 'the create finished before the test could stop the leader midway');
      assert.ok(Date.now() < deadline, `the create never reached the Redis cluster's forming: ${JSON.stringify(seen)}`);
      await new Promise((res) => setTimeout(res, 50));
      seen = await get().catch(() => seen);
    }
    // Whichever node leads now: on a busy machine an election may have moved the lead since it was first read.
    leader = await leaderSeenBy(other);
    other = [0, 1, 2].find((i) => i !== leader)!;
    const onLeader = seen.members.filter((m) => m.node === ids[leader]).map((m) => m.name);
    // The daemon only: its containers run on until its watchdog fences them, then they move too.
    await bed.kill(leader);
    const killedAt = Date.now();
    await waitFor(async () => (await get()).status === 'ACTIVE', 120_000, 'the new leader to finish the create');
    t.diagnostic(`leader stopped at "${seen.message}" with ${onLeader.length} members on it; ACTIVE ${Date.now() - killedAt} ms later`);
    assert.deepEqual(
      (await get()).members.map((m) => m.name).sort(),
      ['early-0', 'early-1', 'early-2', 'early-3', 'early-4', 'early-5'],
      'each member made once',
    );
    // The create may finish before the dead daemon's lease expires; its members move once it has.
    await waitFor(
      async () => (await get()).members.every((m) => m.state === 'running' && m.node !== ids[leader]),
      60_000,
      "the dead leader's members to run on live nodes",
    );
    const s = await get();
    assert.ok(onLeader.length > 0 && onLeader.every((n) => s.members.find((m) => m.name === n)!.epoch > 1), "the dead leader's members moved");
    // The password the service was created with, through the API (the CLI's route); the new leader changed nothing of it.
    const creds = await bed.api(other, 'GET', '/v1/service/credentials?name=early');
    assert.equal(creds.status, 200, JSON.stringify(creds.json));
    const pw = redisPassword(creds.json as Credentials, 'early');
    await waitFor(
      async () => {
        for (const m of s.members) if (!/cluster_state:ok/.test(await redis(m.ip, pw, ['CLUSTER', 'INFO']))) return false;
        return true;
      },
      30_000,
      'cluster_state:ok on every member after the moves',
    );
    // One cluster of three shards, each a master with every slot of its range and one replica, known to every member.
    // Waited for whole: views of members that just moved take a moment of gossip to settle ("fail" flags clearing,
    // a master that came back learning that its replica took over).
    const isMaster = (l: string) => / (myself,)?master /.test(l);
    const isReplica = (l: string) => / (myself,)?slave /.test(l);
    const settledInfo = [/cluster_state:ok/, /cluster_slots_assigned:16384/, /cluster_known_nodes:6/, /cluster_size:3/];
    const view = await pollUntil(
      async () => ({
        infos: await Promise.all(s.members.map(async (m) => ({ name: m.name, info: await redis(m.ip, pw, ['CLUSTER', 'INFO']) }))),
        nodes: (await redis(s.members[0].ip, pw, ['CLUSTER', 'NODES'])).split('\n'),
      }),
      ({ infos, nodes }) =>
        infos.every(({ info }) => settledInfo.every((re) => re.test(info))) &&
        nodes.every((l) => !l.includes('fail')) &&
        nodes.filter(isMaster).length === 3 &&
        nodes.filter(isReplica).length === 3,
      { ms: 30_000, what: 'every member to see one cluster of three shards, each a master and a replica', every: 500, context: () => bed.logs(10) },
    );
    for (const { name, info } of view.infos) for (const re of settledInfo) assert.match(info, re, `${name}: ${info}`);
    const nodes = view.nodes;
    assert.equal(nodes.filter(isMaster).length, 3, nodes.join('\n'));
    assert.equal(nodes.filter(isReplica).length, 3, nodes.join('\n'));
    await bed.start(leader, bed.serviceNodeArgs(LEASE_TTL));
    await waitFor(
      async () => (await status(other)).members.filter((m: { role: string; active?: boolean }) => m.role === 'voter').length === 3,
      30_000,
      'the node back',
    );
    const del = await cli(['service', 'delete', 'early', '--addr', bed.nodes[other].addr]);
    assert.equal(del.code, 0, del.stderr);
    assert.match(del.stdout, /early: DELETED/);
    await waitFor(
      async () => (await bed.api(other, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3,
      30_000,
      'the restarted agent',
    );
  });

  it('creates a Redis primary and replica that a client reaches by name with the password only, and brings the primary back with its data when its node dies', async (t) => {
    const started = Date.now();
    const create = await cli([
      'service',
      'create',
      '--type',
      'redis',
      '--name',
      'cache',
      '--replicas',
      '2',
      '--volume-size',
      '64',
      '--addr',
      bed.nodes[1].addr,
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${bed.logs(10)}`);
    t.diagnostic(`create to ACTIVE: ${Date.now() - started} ms`);
    assert.match(create.stderr, /CREATING|INITIALIZING/, 'progress was shown while waiting');
    assert.match(create.stdout, /cache: ACTIVE/);

    // Logs come from the member's node, whichever node is asked. (Docker copies a container's output to its log
    // on its own time: the line may land a moment after the member turned healthy.)
    const runsOn = ids.indexOf((await service(0)).members.find((m: { name: string }) => m.name === 'cache-0').node);
    const logs = await pollUntil(
      () => cli(['service', 'logs', 'cache', '--member', 'cache-0', '--addr', bed.nodes[(runsOn + 1) % 3].addr]),
      (l) => l.code === 0 && /Ready to accept connections/.test(l.stdout),
      { ms: 20_000, what: "cache-0's log to say Redis is ready", every: 500, context: () => bed.logs(10) },
    );
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /Ready to accept connections/);

    // The client finds the members by name through any node's DNS server.
    const primaryIp = await resolved(2, 'cache-0.cache.fc.test');
    const replicaIp = await resolved(0, 'cache-1.cache.fc.test');
    assert.match(primaryIp, /^10\.77\.0\.2\d\d$/);

    // Every member requires the service's generated password: what `firecampd service credentials` shows.
    const creds = await cli(['service', 'credentials', 'cache', '--json', '--addr', bed.nodes[2].addr]);
    assert.equal(creds.code, 0, creds.stderr);
    const password = redisPassword(JSON.parse(creds.stdout) as Credentials, 'cache');
    for (const ip of [primaryIp, replicaIp]) {
      assert.equal(await redis(ip, null, ['PING']), 'NOAUTH Authentication required.', `${ip} refuses a client without the password`);
      assert.equal(await redis(ip, null, ['GET', 'key:0']), 'NOAUTH Authentication required.', `${ip} serves no data without the password`);
      assert.equal(await redis(ip, 'not-the-password', ['PING']), 'NOAUTH Authentication required.', `${ip} refuses a wrong password`);
      assert.equal(await redis(ip, password, ['PING']), 'PONG', `${ip} serves a client with the password`);
      const plain = await redis(ip, password, ['PING'], undefined, true).catch((err: Error) => err.message);
      assert.notEqual(plain, 'PONG', `${ip} answers no plaintext client: ${plain}`);
    }
    // What a client trusts is what signed the members' certificates (redis-cli checked them above).
    assert.equal(fs.readFileSync(await serviceCaFile(cli, 'cache', bed.nodes[1].addr), 'utf8'), fs.readFileSync(clusterCa, 'utf8'));
    // Shown by `service credentials` only: not by `service get`, not in the member's container, not in the nodes' logs.
    assert.ok(!(await cli(['service', 'get', 'cache', '--json', '--addr', bed.nodes[0].addr])).stdout.includes(password), 'service get shows no password');
    const inspect = docker(bed.nodes[runsOn].docker!, ['inspect', 'firecampd-cache-cache-0']);
    assert.match(inspect, /"Name": "\/firecampd-cache-cache-0"/);
    assert.ok(!inspect.includes(password), "the password is not in the member's container spec or env (docker inspect)");

    const input = Array.from({ length: KEYS }, (_, i) => `SET key:${i} value-${i}\n`).join('');
    assert.match(await redis(primaryIp, password, ['--pipe'], input), new RegExp(`errors: 0, replies: ${KEYS}$`));
    assert.equal(await redis(primaryIp, password, ['DBSIZE']), String(KEYS));
    await waitFor(async () => (await redis(replicaIp, password, ['DBSIZE'])) === String(KEYS), 20_000, 'the replica to have every key');
    // Scaling up adds a replica that catches up from the primary (it authenticates with the same password: masterauth).
    const scaled = await cli(['service', 'scale', 'cache', '3', '--addr', bed.nodes[2].addr]);
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.match(scaled.stdout, /cache: ACTIVE[\s\S]*cache-2/);
    const thirdIp = await resolved(1, 'cache-2.cache.fc.test');
    await waitFor(async () => (await redis(thirdIp, password, ['DBSIZE'])) === String(KEYS), 20_000, 'the new replica to have every key');
    assert.equal(await redis(thirdIp, null, ['DBSIZE']), 'NOAUTH Authentication required.', 'the new replica requires the password too');
    // The node dies as a machine would: only what the primary fsynced may count as written (not what sits in page cache).
    await fsyncAof(primaryIp, password);

    // The node running the primary dies.
    const before = await service(0);
    const primary = before.members.find((m: { name: string }) => m.name === 'cache-0');
    const victim = ids.indexOf(primary.node);
    assert.ok(victim >= 0, 'the primary runs on a known node');
    const killedAt = Date.now();
    bed.die(victim);

    const survivor = bed.nodes.findIndex((_, i) => i !== victim);
    await waitFor(
      async () => {
        const s = await service(survivor);
        const m = s.members.find((x: { name: string }) => x.name === 'cache-0');
        return m.epoch > primary.epoch && m.state === 'running' && (await redis(primaryIp, password, ['PING'])) === 'PONG';
      },
      60_000,
      'the primary to come back on another node',
    );
    t.diagnostic(`node death to the primary answering again: ${Date.now() - killedAt} ms`);
    // Read once: the name has named this address since the create, and the survivor's linearizable read saw cache-0 running.
    // (A Redis that still loads its AOF answers PING with -LOADING: PONG means the data below is all in.)
    assert.equal(await resolve(survivor, 'cache-0.cache.fc.test'), primaryIp, 'same name, same address');
    assert.match(await redis(primaryIp, password, ['ROLE']), /^master/, 'the primary itself answers at its address, not another member on the same node');
    assert.equal(await redis(primaryIp, password, ['DBSIZE']), String(KEYS), 'every key is back');
    for (const i of [0, 4242, KEYS - 1]) assert.equal(await redis(primaryIp, password, ['GET', `key:${i}`]), `value-${i}`);
    assert.equal(await redis(primaryIp, null, ['PING']), 'NOAUTH Authentication required.', 'the primary that came back still requires the password');
    // Read once: the catalog moves every member of a dead node in the same pass, seconds before cache-0 answered again.
    const after = await service(survivor);
    assert.ok(
      after.members.every((m: { node: string }) => m.node !== ids[victim]),
      'nothing left on the dead node',
    );
    for (const n of bed.nodes) assert.ok(!n.logs.some((l) => l.includes(password)), `${n.ns} logged the password`);
  });
  it('backs up the Redis primary to a shared directory while it serves, and restores it as a new service: every key acknowledged before the backup, none after; a damaged part is refused, named', async () => {
    const live = bed.nodes.flatMap((n, i) => (n.proc ? [i] : []));
    const via = bed.nodes[live[0]].addr;
    const target = `dir:${path.join(bed.shared, 'backups')}`;
    const json = async (args: string[]) => {
      const r = await cli([...args, '--json', '--addr', via]);
      if (r.code !== 0) {
        const members = await cli(['service', 'get', 'cache2', '--addr', via]);
        assert.fail(`${args.join(' ')}: ${r.stderr}\n${members.stdout}\n${bed.logs(25)}`);
      }
      return JSON.parse(r.stdout);
    };
    const password = redisPassword((await json(['service', 'credentials', 'cache'])) as Credentials, 'cache');
    const primaryIp = await resolved(live[0], 'cache-0.cache.fc.test');
    assert.equal((await json(['backup', 'target', 'set', target])).target, target);
    assert.equal(await redis(primaryIp, password, ['SET', 'before-backup', 'kept']), 'OK');
    const b = await json(['backup', 'create', 'cache', '--wait']);
    assert.equal(b.status, 'complete', b.message);
    assert.equal(b.local_target, false, 'a directory the user named is taken as shared');
    assert.deepEqual(
      b.parts.map((p: { member: string; name: string }) => `${p.member}/${p.name}`),
      ['cache-0/rdb'],
    );
    assert.ok(b.parts[0].rawBytes > KEYS * 10 && b.parts[0].bytes > 0, `an RDB of ${KEYS} keys: ${b.parts[0].rawBytes} bytes, sealed ${b.parts[0].bytes}`);
    assert.equal(await redis(primaryIp, password, ['SET', 'after-backup', 'not-in-it']), 'OK');
    // Listed by the cluster, and by the target itself (what a new cluster sees).
    assert.ok((await json(['backup', 'list', 'cache'])).backups.some((x: { id: string }) => x.id === b.id));
    assert.deepEqual(
      (await json(['backup', 'list', '--target', target])).backups.map((x: { id: string; status: string }) => `${x.id} ${x.status}`),
      [`${b.id} complete`],
    );
    // One byte changed in the part: the restore is refused, naming the part, and makes nothing.
    const file = path.join(bed.shared, 'backups', b.parts[0].key);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const refused = await cli(['backup', 'restore', b.id, '--as', 'cache2', '--addr', via]);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      new RegExp(
        `part rdb of cache-0 \\(${b.parts[0].key}\\) of backup ${b.id} is damaged: its SHA-256 is [0-9a-f]{64}, the manifest says ${b.parts[0].sha256}; nothing was restored`,
      ),
    );
    assert.equal((await cli(['service', 'get', 'cache2', '--addr', via])).code, 1, 'no service made');
    // A restore drill of the damaged backup says so, naming the part.
    const drillBad = await cli(['backup', 'verify', b.id, '--json', '--addr', via]);
    assert.equal(drillBad.code, 1);
    const bad = JSON.parse(drillBad.stdout) as { status: string; message: string };
    assert.equal(bad.status, 'failed');
    assert.match(bad.message, new RegExp(`part rdb of cache-0 \\(${b.parts[0].key}\\) of backup ${b.id} is damaged`));
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    // And of the whole one: restored into a throwaway service, checked by the type (its keys), removed.
    const drill = await json(['backup', 'verify', b.id]);
    assert.deepEqual([drill.status, drill.summary], ['ok', `${KEYS + 1} keys`], JSON.stringify(drill));
    assert.equal((await cli(['service', 'get', drill.service, '--addr', via])).code, 1, 'the drill left no service');
    // Restored: a new service of the same shape, with the same password (its data was made with it).
    const restored = await json(['backup', 'restore', b.id, '--as', 'cache2', '--timeout', '120']);
    assert.equal(restored.status, 'ACTIVE');
    assert.equal(restored.spec.replicas, 3);
    assert.equal(redisPassword((await json(['service', 'credentials', 'cache2'])) as Credentials, 'cache2'), password);
    const ip2 = await resolved(live[0], 'cache2-0.cache2.fc.test');
    assert.equal(await redis(ip2, password, ['GET', 'before-backup']), 'kept');
    assert.equal(await redis(ip2, password, ['EXISTS', 'after-backup']), '0', 'nothing written after the backup');
    assert.equal(await redis(ip2, password, ['DBSIZE']), String(KEYS + 1));
    for (const i of [0, 4242, KEYS - 1]) assert.equal(await redis(ip2, password, ['GET', `key:${i}`]), `value-${i}`);
    const replica = await resolved(live[0], 'cache2-1.cache2.fc.test');
    await waitFor(async () => (await redis(replica, password, ['DBSIZE'])) === String(KEYS + 1), 30_000, "the restored service's replica to sync every key");
    assert.equal((await json(['service', 'delete', 'cache2'])).status, 'DELETED');
    assert.equal((await json(['backup', 'delete', b.id])).status, 'DELETED');
    assert.deepEqual((await json(['backup', 'list', '--target', target])).backups, []);
  });

  it('makes a scheduled backup on each moment of its schedule, and retention removes the oldest from the target and the records', async () => {
    const live = bed.nodes.flatMap((n, i) => (n.proc ? [i] : []));
    const via = bed.nodes[live[0]].addr;
    const root = path.join(bed.shared, 'backups');
    type Rec = { id: string; status: string; scheduled?: boolean; created_at: string };
    const list = async () =>
      (JSON.parse((await cli(['backup', 'list', 'cache', '--json', '--addr', via])).stdout) as { backups: Rec[] }).backups.filter((b) => b.scheduled);
    const set = await cli(['backup', 'schedule', 'cache', '--backup-schedule', '*/10 * * * * *', '--backup-retention', '2', '--json', '--addr', via]);
    assert.equal(set.code, 0, set.stderr);
    const seen = new Map<string, Rec>();
    const now = await pollUntil(
      async () => {
        const l = await list();
        for (const b of l) seen.set(b.id, b);
        return l;
      },
      (l) => seen.size >= 3 && l.filter((b) => b.status === 'complete').length === 2 && l.length === 2,
      { ms: 90_000, what: 'three scheduled backups made, and two complete ones kept', context: () => bed.logs(20) },
    );
    const byTime = [...seen.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
    for (const b of byTime) {
      // On time: asked for within 2 s of a moment of the schedule (every 10 s), by the leader's passes.
      const ms = Date.parse(b.created_at) % 10_000;
      assert.ok(ms < 2000, `${b.id} asked for ${ms} ms after its moment`);
    }
    const oldest = byTime[0];
    assert.ok(!now.some((b) => b.id === oldest.id), 'the oldest is gone from the records');
    assert.ok(!fs.existsSync(path.join(root, oldest.id)), 'and from the target');
    for (const b of now) assert.ok(fs.existsSync(path.join(root, b.id, 'manifest.json')), `${b.id} kept whole`);
    const off = await cli(['backup', 'schedule', 'cache', '--backup-schedule', 'none', '--addr', via]);
    assert.equal(off.code, 0, off.stderr);
    const view = JSON.parse((await cli(['service', 'get', 'cache', '--json', '--addr', via])).stdout) as { backups: Record<string, unknown> };
    const newest = now.sort((a, b) => (a.created_at < b.created_at ? 1 : -1))[0];
    assert.equal((view.backups.last_success as { id: string }).id, newest.id);
    assert.equal(view.backups.schedule, null);
    assert.equal(view.backups.next_run, null);
  });

  it('says why a placement cannot be made (Stalled, IPPoolExhausted), gets out of it with a smaller count, and takes the names of members that go away', async () => {
    // The node the test before killed is gone for good (proc null).
    const live = bed.nodes.flatMap((n, i) => (n.proc ? [i] : []));
    const via = live[0];
    const get = async () => JSON.parse((await cli(['service', 'get', 'big', '--json', '--addr', bed.nodes[via].addr])).stdout);
    const condition = (s: { conditions: { type: string; status: string; reason: string; message: string }[] }, type: string) =>
      s.conditions.find((c) => c.type === type)!;
    // More members than the pool (21 addresses, some in use) has addresses for.
    const create = await cli([
      'service',
      'create',
      '--type',
      'redis',
      '--name',
      'big',
      '--replicas',
      '30',
      '--volume-size',
      '16',
      '--addr',
      bed.nodes[via].addr,
    ]);
    assert.notEqual(create.code, 0, 'the create gives up while the service is stalled');
    assert.match(
      create.stderr,
      /cannot go on \(IPPoolExhausted\): the static IP pool is exhausted: 30 members need an address .*widen --ip-pool.*firecampd service scale big N/,
    );
    let s = await get();
    assert.equal(s.status, 'CREATING', 'no dead end: the service waits for a change');
    assert.equal(condition(s, 'Stalled').status, 'True');
    assert.equal(condition(s, 'Stalled').reason, 'IPPoolExhausted');
    assert.equal(condition(s, 'Ready').status, 'False');
    // The way out: ask for fewer.
    const scaled = await cli(['service', 'scale', 'big', '2', '--addr', bed.nodes[via].addr]);
    assert.equal(scaled.code, 0, `${scaled.stderr}\n${bed.logs(10)}`);
    s = await get();
    assert.equal(s.status, 'ACTIVE');
    assert.deepEqual(
      s.conditions.map((c: { type: string; status: string }) => `${c.type}=${c.status}`),
      ['Ready=True', 'Progressing=False', 'Degraded=False', 'Stalled=False'],
    );
    for (const i of live) {
      await resolved(i, 'big-0.big.fc.test');
      await resolved(i, 'big-1.big.fc.test');
    }
    // A scale in takes the leaving member's name away; a delete, every name.
    const gone = async (name: string) =>
      pollUntil(
        async () =>
          Promise.all(
            live.map((i) =>
              resolve(i, name).then(
                () => 'resolves',
                () => 'gone',
              ),
            ),
          ),
        (r) => r.every((x) => x === 'gone'),
        { ms: 20_000, what: `every live node's DNS server to stop answering for ${name}`, context: () => bed.logs(10) },
      );
    const shrunk = await cli(['service', 'scale', 'big', '1', '--addr', bed.nodes[via].addr]);
    assert.equal(shrunk.code, 0, shrunk.stderr);
    await gone('big-1.big.fc.test');
    assert.equal(await resolve(live[0], 'big-0.big.fc.test'), s.members[0].ip, 'the staying member keeps its name');
    const deleted = await cli(['service', 'delete', 'big', '--addr', bed.nodes[via].addr]);
    assert.equal(deleted.code, 0, deleted.stderr);
    await gone('big-0.big.fc.test');
  });
});
