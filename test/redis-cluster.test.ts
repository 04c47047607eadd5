// End to end on the test bed (3 nodes with a dockerd each, a client
// namespace): `firecampd service create --type redis --shards 3
// --replicas-per-shard 1` gives a healthy Redis cluster whose members
// require the service's password (`firecampd service credentials`); a client
// writes 10,000 keys by the members' DNS names; a rolling upgrade keeps it
// answering; stop and start keep the data; kill -9 of the firecampd and
// dockerd of a node running a master brings its members back elsewhere with
// their data, addresses and names, and the cluster is healthy again.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { TestBed } from './bed/bed.ts';
import { REDIS_IMAGE, docker } from './bed/docker.ts';
import { REPO, runCli, tempDir } from './helpers/proc.ts';
import { assertWalled, inClientNamespace, type MemberView, serviceCaFile, serviceCredentials, type ServiceView } from './helpers/service-bed.ts';
import { pollUntil } from './helpers/wait.ts';
import { startBedPrometheus, type Prometheus } from './helpers/prometheus.ts';

const execFileAsync = promisify(execFile);
const LEASE_TTL = 8;
const KEYS = 10_000;
/** The default image under another name, for the rolling upgrade: redis:7.0-next. */
const NEXT_IMAGE = `${REDIS_IMAGE}-next`;
const CLIENT = path.join(REPO, 'test', 'helpers', 'redis-cluster-client.ts');

/** A member with its DNS name and health, as `service get` shows it. */
type Member = MemberView & { dns: string; health: string | null };

describe('redis cluster', { timeout: 900_000 }, () => {
  let bed: TestBed;
  const ids: string[] = [];
  let cli: (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;

  const waitFor = async (cond: () => Promise<boolean>, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!(await cond().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${bed.logs(10)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const inClient = (cmd: string[]) => inClientNamespace(bed, cmd);
  /** The service's password, from `firecampd service credentials cache --json` once it is ACTIVE. */
  let password = '';
  /** What `service ca cache` printed: the clients check the members' certificates against it. */
  let caFile = '';
  /** A real Prometheus in the client namespace, finding the members through the nodes' discovery. */
  let prometheus: Prometheus | undefined;
  /** A message without the password: a failed command's message names its command line. */
  const redact = (err: unknown): Error => {
    const message = err instanceof Error ? err.message : String(err);
    return new Error(password ? message.replaceAll(password, '<password>') : message);
  };
  /** The cluster client in the client namespace, finding the cluster through node `via`'s DNS server. */
  const client = async (via: number, args: string[]) => {
    const seeds = ['cache-0.cache.fc.test', 'cache-2.cache.fc.test', 'cache-4.cache.fc.test'].join(',');
    const { stdout } = await execFileAsync(
      'nsenter',
      inClient([
        process.execPath,
        '--import',
        'tsx',
        CLIENT,
        '--dns',
        `${bed.nodes[via].ip}:53`,
        '--seed',
        seeds,
        `--password=${password}`,
        `--ca=${caFile}`,
        ...args,
      ]),
      { cwd: REPO, timeout: 120_000 },
    ).catch((err: unknown) => {
      throw redact(err);
    });
    return JSON.parse(stdout);
  };
  /** redis-cli in the client namespace, with the password in REDISCLI_AUTH (never on its command line). It exits 0 on an error reply too. */
  const redisCli = async (ip: string, args: string[]) =>
    (
      await execFileAsync('nsenter', inClient(['redis-cli', '--tls', '--cacert', caFile, '-h', ip, '-p', '6379', ...args]), {
        encoding: 'utf8',
        timeout: 10_000,
        env: { ...process.env, REDISCLI_AUTH: password },
      })
    ).stdout.trim();
  const service = async (via: number) =>
    JSON.parse((await cli(['service', 'get', 'cache', '--json', '--addr', bed.nodes[via].addr])).stdout) as ServiceView<Member>;
  const clusterOk = async (ips: string[]) => {
    for (const ip of ips) if (!(await redisCli(ip, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false;
    return true;
  };

  before(async () => {
    bed = await TestBed.create({ nodes: 3, clientNamespace: true, outsideNamespace: true, docker: true });
    for (let i = 0; i < 3; i++) await bed.start(i, bed.serviceNodeArgs(LEASE_TTL));
    const caFile = path.join(tempDir(), 'ca.crt');
    fs.copyFileSync(path.join(bed.nodes[0].dataDir, 'tls', 'ca.crt'), caFile);
    cli = (args) => runCli([...args, '--ca-file', caFile], { FIRECAMPD_TOKEN: bed.token });
    await waitFor(
      async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3,
      60_000,
      'three agents',
    );
    ids.push(...(await bed.nodeIds()));
  });
  after(async () => {
    await prometheus?.stop();
    await bed?.destroy();
  });

  it('explains a service that no node can run', async () => {
    const r = await cli(['service', 'create', '--type', 'redis', '--name', 'picky', '--require-label', 'disk=ssd', '--detach', '--addr', bed.nodes[0].addr]);
    assert.equal(r.code, 0, r.stderr);
    // Waited for whole: the catalog writes its explanation a moment after the create returned.
    const explained =
      /picky \(redis\): CREATING no node can run picky-0: fcb-n1: lacks label disk=ssd; fcb-n2: lacks label disk=ssd; fcb-n3: lacks label disk=ssd$/m;
    const got = await pollUntil(
      async () => (await cli(['service', 'get', 'picky', '--addr', bed.nodes[2].addr])).stdout,
      (out) => explained.test(out),
      { ms: 20_000, what: 'the explanation of why no node can run picky-0', every: 250, context: () => bed.logs(10) },
    );
    assert.match(got, explained);
    const bad = await cli(['service', 'create', '--type', 'redis', '--name', 'bad', '--shards', '2', '--addr', bed.nodes[0].addr]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /redis\.shards.*3/, 'too few shards are refused with the field named');
    const deleted = await cli(['service', 'delete', 'picky', '--addr', bed.nodes[0].addr]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /^picky: DELETED$/m, 'delete waits until the service is gone');
    const gone = await cli(['service', 'get', 'picky', '--addr', bed.nodes[1].addr]);
    assert.equal(gone.code, 1);
  });

  it('creates a Redis cluster, upgrades it while it answers, stops and starts it, and survives kill -9 of a master node', async (t) => {
    // Create, from any node, waiting with progress.
    const started = Date.now();
    const create = await cli([
      'service',
      'create',
      '--type',
      'redis',
      '--name',
      'cache',
      '--shards',
      '3',
      '--replicas-per-shard',
      '1',
      '--volume-size',
      '64',
      '--allow',
      `${bed.client!.ip}/32`,
      '--addr',
      bed.nodes[1].addr,
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${bed.logs(10)}`);
    t.diagnostic(`create to ACTIVE: ${Date.now() - started} ms`);
    assert.match(create.stderr, /CREATING|INITIALIZING/, 'progress was shown while waiting');
    assert.match(create.stdout, /cache: ACTIVE/);
    // Every member requires the password the service was made with; a client gets it as a user would.
    const shown = await serviceCredentials(cli, 'cache', bed.nodes[2].addr);
    assert.deepEqual([shown.name, shown.credentials.map((c) => [c.secret, c.user])], ['cache', [['password', 'default']]]);
    password = shown.credentials[0].value;
    caFile = await serviceCaFile(cli, 'cache', bed.nodes[2].addr);
    assert.match(password, /^[A-Za-z0-9_-]{32}$/, 'a generated password');
    // Read once, down to the cluster's shape: the catalog sets ACTIVE only after every member ran healthy,
    // answered cluster_state:ok, and saw three masters with slots and three replicas.
    // A real Prometheus finds every member through the nodes' discovery and scrapes its exporter: each up, over TLS, with the password.
    prometheus = await startBedPrometheus(bed, caFile);
    const prom = prometheus;
    const up = await pollUntil(
      () => prom.query('redis_up{service="cache", type="redis"}'),
      (r) => r.length === 6 && r.every((x) => x.value === 1),
      { ms: 60_000, what: 'redis_up 1 for the 6 members', context: () => prom.log() },
    );
    assert.deepEqual(up.map((r) => r.metric.member).sort(), ['cache-0', 'cache-1', 'cache-2', 'cache-3', 'cache-4', 'cache-5']);
    let s = await service(0);
    assert.deepEqual(up.map((r) => [r.metric.member, r.metric.node]).sort(), s.members.map((m) => [m.name, m.node]).sort(), 'each labelled with its node');
    assert.equal(s.members.length, 6);
    assert.ok(
      s.members.every((m) => m.state === 'running' && m.health === 'healthy'),
      `every member running and healthy: ${JSON.stringify(s.members)}`,
    );
    const ips = s.members.map((m) => m.ip);
    // The wall: the client namespace is on the access list, the outside one is not; the cluster bus too.
    await assertWalled(bed, s.members, [6379, 16379]);
    assert.equal(new Set(ips).size, 6, 'a static IP per member');
    for (let shard = 0; shard < 3; shard++)
      assert.notEqual(
        s.members.find((m) => m.name === `cache-${2 * shard}`)!.node,
        s.members.find((m) => m.name === `cache-${2 * shard + 1}`)!.node,
        `shard ${shard}'s master and replica on different nodes`,
      );
    assert.ok(await clusterOk(ips), 'cluster_state:ok on every member');
    // The cluster formed with a 1 s node timeout; by ACTIVE every member is back at 5 s, longer than firecampd takes to
    // bring a dead master back with its data, so that no replica takes its slots (and loses its last writes) meanwhile.
    for (const ip of ips) assert.equal(await redisCli(ip, ['CONFIG', 'GET', 'cluster-node-timeout']), 'cluster-node-timeout\n5000', `${ip}'s node timeout`);
    const nodesSeen = (await redisCli(ips[0], ['CLUSTER', 'NODES'])).split('\n');
    assert.equal(nodesSeen.filter((l) => l.includes('master')).length, 3);
    assert.equal(nodesSeen.filter((l) => l.includes('slave')).length, 3);
    for (const ip of ips)
      assert.ok(
        nodesSeen.some((l) => l.includes(` ${ip}:6379@`)),
        `${ip} is announced to the cluster`,
      );

    // 10,000 keys by DNS names, from the client namespace.
    assert.deepEqual(await client(2, ['write', String(KEYS)]), { written: KEYS });
    assert.deepEqual(await client(0, ['read', String(KEYS)]), { good: KEYS, wrong: [] });

    // A rolling upgrade while a client keeps writing and reading.
    for (const n of bed.nodes) docker(n.docker!, ['tag', REDIS_IMAGE, NEXT_IMAGE]);
    const load = spawn(
      'nsenter',
      inClient([
        process.execPath,
        '--import',
        'tsx',
        CLIENT,
        '--dns',
        `${bed.nodes[0].ip}:53`,
        '--seed',
        'cache-0.cache.fc.test,cache-2.cache.fc.test',
        `--password=${password}`,
        `--ca=${caFile}`,
        'load',
      ]),
      { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    let loadOut = '';
    load.stdout.on('data', (d) => (loadOut += d));
    let loadExited = false;
    const loadDone = new Promise((r) => load.once('close', r)).then(() => (loadExited = true));
    try {
      // The upgrade starts once the client works (it starts, finds the cluster through DNS and does a first SET/GET): not after a fixed pause.
      await pollUntil(
        () => loadOut,
        (out) => out.includes('{"ready":true}') || loadExited,
        { ms: 60_000, what: 'the load client to do its first SET and GET', context: () => bed.logs(10) },
      );
      assert.ok(!loadExited, `the load client exited before it was ready: ${loadOut}`);
      const upgradeStarted = Date.now();
      const up = await cli(['service', 'upgrade', 'cache', '--image', NEXT_IMAGE, '--addr', bed.nodes[2].addr]);
      assert.equal(up.code, 0, `${up.stderr}\n${bed.logs(10)}`);
      t.diagnostic(`rolling upgrade of 6 members: ${Date.now() - upgradeStarted} ms`);
      assert.match(up.stderr, /UPGRADING/);
    } finally {
      load.stdin.end();
      await loadDone;
    }
    const stats = JSON.parse(loadOut.trim().split('\n').at(-1)!) as { ok: number; errors: number; longestGapMs: number; messages: string[] };
    t.diagnostic(`during the upgrade: ${stats.ok} ok, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    assert.ok(stats.ok > 100, 'the client kept working');
    assert.equal(stats.errors, 0, `the cluster kept answering: ${stats.messages.join('; ')}`);
    // Read once, as below: UPGRADING turns ACTIVE only after every member ran the new image and answered with cluster_state:ok.
    s = await service(1);
    assert.ok(
      s.members.every((m) => m.image === NEXT_IMAGE && m.state === 'running'),
      JSON.stringify(s.members),
    );
    // Every member's container (its exporter beside it keeps the exporter's image).
    const members = (d: Parameters<typeof docker>[0]) =>
      docker(d, ['ps', '--filter', 'name=cache-[0-9]+$', '--format', '{{.Image}}']).split('\n').filter(Boolean);
    assert.equal(bed.nodes.flatMap((n) => members(n.docker!)).length, 6, 'six members run');
    for (const n of bed.nodes) for (const c of members(n.docker!)) assert.equal(c, NEXT_IMAGE);
    assert.ok(await clusterOk(ips));
    assert.deepEqual(await client(1, ['read', String(KEYS)]), { good: KEYS, wrong: [] });

    // Stop: no member runs anywhere; start: the same members, data and addresses.
    const stop = await cli(['service', 'stop', 'cache', '--addr', bed.nodes[0].addr]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.match(stop.stdout, /cache: STOPPED/);
    // Read once: STOPPED comes only once no claim is left, and an agent releases its claim after the container stopped.
    for (const n of bed.nodes) assert.equal(docker(n.docker!, ['ps', '-q']), '', `nothing runs on ${n.ns}`);
    const start = await cli(['service', 'start', 'cache', '--addr', bed.nodes[0].addr]);
    assert.equal(start.code, 0, start.stderr);
    s = await service(0);
    assert.deepEqual(
      s.members.map((m) => m.ip),
      ips,
      'same addresses after a start',
    );
    await waitFor(() => clusterOk(ips), 60_000, 'cluster_state:ok after the start');
    assert.deepEqual(await client(2, ['read', String(KEYS)]), { good: KEYS, wrong: [] });

    // kill -9 the firecampd and dockerd of a node that runs a master.
    let masterIp = '';
    for (const ip of ips) if ((await redisCli(ip, ['ROLE'])).startsWith('master')) masterIp = ip;
    const master = s.members.find((m) => m.ip === masterIp)!;
    const victim = ids.indexOf(master.node);
    const moving = s.members.filter((m) => m.node === master.node);
    // A margin only, no condition: every key read below was written before the stop above, and Redis fsyncs its AOF when it stops cleanly.
    await new Promise((r) => setTimeout(r, 1500)); // appendfsync everysec
    const killedAt = Date.now();
    await bed.crash(victim);
    const survivor = (victim + 1) % 3;
    await waitFor(
      async () => {
        const now = await service(survivor);
        return moving.every((was) => {
          const m = now.members.find((x) => x.name === was.name)!;
          return m.node !== was.node && m.epoch > was.epoch && m.state === 'running';
        });
      },
      90_000,
      'the members of the killed node to run elsewhere',
    );
    await waitFor(
      () => clusterOk(ips.filter((ip) => moving.every((m) => m.ip !== ip)).concat(moving.map((m) => m.ip))),
      60_000,
      'cluster_state:ok on every member',
    );
    t.diagnostic(`kill -9 to the moved members serving in a healthy cluster: ${Date.now() - killedAt} ms`);
    // The killed node's watchdog fenced it: its containers are gone and it holds none of the addresses.
    // Read once on purpose: the watchdog acts at half the lease TTL, the members moved only after the lease expired.
    const left = await execFileAsync('ip', ['-n', bed.nodes[victim].ns, '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' });
    for (const m of moving) assert.ok(!left.stdout.includes(` ${m.ip}/`), `${m.ip} dropped on the killed node`);
    s = await service(survivor);
    assert.deepEqual(
      s.members.map((m) => m.ip),
      ips,
      'same addresses',
    );
    const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 2 });
    resolver.setServers([`${bed.nodes[survivor].ip}:53`]);
    // Read once: each name was written before its member first ran (same address ever since), long before the survivor saw it running.
    for (const m of moving) assert.deepEqual(await resolver.resolve4(m.dns), [m.ip], `${m.dns} still names ${m.ip}`);
    for (const m of moving) assert.equal(await redisCli(m.ip, ['PING']), 'PONG', `${m.name} answers at ${m.ip}`);
    assert.deepEqual(await client(survivor, ['read', String(KEYS)]), { good: KEYS, wrong: [] });
  });
});
