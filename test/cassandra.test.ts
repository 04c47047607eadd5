// Cassandra end to end on the test bed (3 nodes with a dockerd each, loop
// volumes on shared storage, static IPs, a client namespace), with the real
// server in the cassandra:5.0 stand-in image and the DataStax Node.js driver
// as the client:
//
// - create a ring of 3: every member Up and Normal, logins as the generated
//   superuser only (cassandra/cassandra refused), system_auth replicated 3
//   times; 10,000 rows written at QUORUM to a keyspace of 3 replicas;
// - a node dies (every process killed, its link down) while a client writes
//   and reads back at QUORUM: it keeps going, the member comes back on a
//   live node with its address and its data (every row read from it alone),
//   and every acknowledged row reads back at QUORUM;
// - a backup while the client writes (every member snapshotted at once, the
//   snapshots cleared once archived), restored as cs2: the same tokens on
//   each member, every row acknowledged before the backup began there; a
//   restore drill (backup verify) runs nodetool verify and counts the tables;
// - a rolling upgrade to another tag while the client writes: one member at
//   a time, drained first, nothing acknowledged lost;
// - scale 3 → 4 while the client writes: the new member bootstraps, the
//   others are cleaned up by firecampd, every row still there.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cassandra as cassandraType } from '../src/catalog/services/cassandra/cassandra.ts';
import { image as cassandraImage } from '../src/catalog/services/cassandra/image.ts';
import type { TestBed } from './bed/bed.ts';
import { docker } from './bed/docker.ts';
import { REPO } from './helpers/proc.ts';
import type { Cli, MemberView } from './helpers/service-bed.ts';
import {
  assertWalled,
  backupUnderLoad,
  cliOk,
  completeBackup,
  dockerOf,
  getService,
  runClient,
  serviceContext,
  serviceCaFile,
  servicePassword,
  startLoad,
  startServiceBed,
} from './helpers/service-bed.ts';
import { startBedPrometheus } from './helpers/prometheus.ts';
import { pollUntil } from './helpers/wait.ts';
const CASSANDRA_IMAGE = cassandraType.image;

const LEASE_TTL = 8;
const ROWS = 10_000;
/** The same build under its exact version's tag: an upgrade restarts every member all the same. */
const NEXT_IMAGE = cassandraImage.tags![0];
const CLIENT = path.join(REPO, 'test', 'helpers', 'cql-client.ts');

interface CheckResult {
  present: number;
  missing: number[];
  missingCount: number;
  extra: number;
}

describe('cassandra', { timeout: 2_400_000 }, () => {
  let bed: TestBed;
  let cli: Cli;
  let ids: string[] = [];
  let password = '';
  const dead = new Set<number>();
  const live = () => [0, 1, 2].filter((i) => !dead.has(i));
  const context = () => serviceContext(bed, 'cs', live());
  // The client knows the seeds by name, as a client configured at create would.
  const HOSTS = 'cs-0.cs.fc.test,cs-1.cs.fc.test,cs-2.cs.fc.test';
  const clientArgs = (table: string, pw = password, hosts = HOSTS) => [
    process.execPath,
    '--import',
    'tsx',
    CLIENT,
    '--dns',
    bed.nodes.map((n) => `${n.ip}:53`).join(','),
    '--hosts',
    hosts,
    '--password',
    pw,
    '--table',
    table,
  ];
  const cql = async (table: string, args: string[], pw = password, hosts = HOSTS) =>
    runClient<Record<string, unknown>>(bed, [...clientArgs(table, pw, hosts), ...args], 600_000);
  const service = async () => getService(cli, 'cs', bed.nodes[live()[0]].addr);
  const nodetool = (m: MemberView, args: string[]) => {
    // The image's nodetool finds the member's JMX port in JMX_PORT, which firecampd sets.
    return docker(dockerOf(bed, ids, m), ['exec', `firecampd-cs-${m.name}`, 'nodetool', ...args]);
  };
  /** Every member running on a live node, and Up and Normal as each one sees the ring. */
  const settled = async (n: number) => {
    const s = await service();
    if (s.status !== 'ACTIVE' || s.members.length !== n || !s.members.every((m) => m.state === 'running' && !dead.has(ids.indexOf(m.node)))) return false;
    return s.members.every((m) => {
      const states = [...nodetool(m, ['status']).matchAll(/^([UD][NLJM])\s+(\S+)\s/gm)];
      return states.length === n && states.every((x) => x[1] === 'UN');
    });
  };
  const waitSettled = (n: number, ms: number, what: string) =>
    pollUntil(
      () => settled(n).catch(() => false),
      (ok) => ok,
      { ms, what, context },
    );
  /** Rows 1..n there; and no other, unless `more` (rows written after the first n may be there too: a backup taken while writing). */
  const allThere = async (table: string, n: number, extra: string[] = [], hosts = HOSTS, more = false) => {
    const r = (await pollUntil(
      () => cql(table, ['check', String(n), ...extra], password, hosts),
      (c) => c.missingCount === 0,
      { ms: 60_000, what: `every acknowledged row of t.${table} (1..${n}) ${extra.join(' ')}`, context },
    )) as unknown as CheckResult;
    assert.equal(r.present, n);
    if (!more) assert.equal(r.extra, 0, 'no row that was never written');
  };

  before(async () => {
    ({ bed, cli, ids } = await startServiceBed({ leaseTtl: LEASE_TTL, images: [CASSANDRA_IMAGE], outside: true }));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('creates a ring of 3 that only its generated superuser logs in to, and takes 10,000 rows at QUORUM', async (t) => {
    const started = Date.now();
    const create = await cli([
      'service',
      'create',
      '--type',
      'cassandra',
      '--name',
      'cs',
      '--replicas',
      '3',
      '--heap-mib',
      '384',
      '--volume-size',
      '512',
      '--journal-volume-size',
      '128',
      '--timeout',
      '900',
      '--allow',
      `${bed.client!.ip}/32`,
      '--addr',
      bed.nodes[1].addr,
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${context()}`);
    t.diagnostic(`create → ACTIVE: ${Date.now() - started} ms`);
    const s = await service();
    assert.equal(new Set(s.members.map((m) => m.node)).size, 3, 'one member per node');
    await waitSettled(3, 60_000, 'three members Up and Normal');
    for (const m of s.members) {
      const where = docker(dockerOf(bed, ids, m), ['exec', `firecampd-cs-${m.name}`, 'cat', '/var/lib/cassandra/member/rackdc.properties']);
      assert.match(where, /^dc=default\nrack=default$/m, `${m.name}'s datacenter and rack: the node's region and zone`);
      assert.match(
        docker(dockerOf(bed, ids, m), ['exec', `firecampd-cs-${m.name}`, 'ls', '/var/lib/cassandra-commitlog/commitlog']),
        /CommitLog/,
        `${m.name}'s commit log on its journal volume`,
      );
    }
    // The wall: CQL and the storage port, from the access list's namespace and from outside it.
    await assertWalled(bed, s.members, [9042, 7000]);

    password = await servicePassword(cli, 'cs', 'admin', bed.nodes[0].addr);
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);
    for (const n of bed.nodes) assert.ok(!n.logs.some((l) => l.includes(password)), `no secret in ${n.ns}'s log`);
    await assert.rejects(cql('a', ['setup'], 'cassandra'), /authenticat|credentials|password|Provided username/i, 'the default cassandra login is refused');

    const setup = await cql('a', ['setup']);
    assert.deepEqual(setup, { ok: true, dcs: ['default'] });
    const written = await cql('a', ['insert', String(ROWS)]);
    assert.deepEqual([written.acked, written.errors], [[1, ROWS], 0], JSON.stringify(written));
    await allThere('a', ROWS);

    // Its metrics: a real Prometheus finds each member's JMX exporter (the agent its JVM loads) through the nodes'
    // discovery; the writes just made show in every coordinator's count of them.
    const prom = await startBedPrometheus(bed, await serviceCaFile(cli, 'cs', bed.nodes[0].addr));
    try {
      const writes = await pollUntil(
        () => prom.query('cassandra_clientrequest_latency{service="cs", type="cassandra", scope="Write"}'),
        (r) => r.length === 3,
        { ms: 90_000, what: 'the write counts of the 3 members', context: () => prom.log() },
      );
      assert.ok(writes.reduce((sum, r) => sum + r.value, 0) >= ROWS, `the ${ROWS} writes counted: ${JSON.stringify(writes.map((r) => r.value))}`);
    } finally {
      await prom.stop();
    }
  });

  it('keeps answering at QUORUM while a node is dead; the member comes back elsewhere with its address and data', async (t) => {
    const before = await service();
    // Not the node the create went to: any member's node will do, and this one holds cs-? whichever placement chose.
    const victimMember = before.members.find((m) => m.name === 'cs-1')!;
    const victim = ids.indexOf(victimMember.node);
    await cql('b', ['setup']);
    const load = startLoad(bed, [...clientArgs('b'), 'load'], context);
    try {
      await load.ready();
      const killedAt = Date.now();
      bed.die(victim);
      dead.add(victim);
      // Writes and reads at QUORUM need 2 of 3 replicas: they go on while one is gone. Keep writing through the move.
      const back = await pollUntil(service, (v) => v.members.some((m) => m.name === 'cs-1' && m.state === 'running' && m.node !== victimMember.node), {
        ms: 180_000,
        what: 'cs-1 running on a live node',
        context,
      });
      t.diagnostic(`kill → cs-1 running on another node: ${Date.now() - killedAt} ms`);
      assert.equal(back.members.find((m) => m.name === 'cs-1')!.ip, victimMember.ip, 'cs-1 kept its address');
      await waitSettled(3, 240_000, 'three members Up and Normal again, on the live nodes');
      t.diagnostic(`kill → cs-1 Up and Normal in the ring: ${Date.now() - killedAt} ms`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`during the failover: ${stats.acked[1]} written and read back at QUORUM, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    assert.ok(stats.acked[1] > 0, JSON.stringify(stats));
    // No range moves in a failover: every coordinator has the same ring, so a quorum read must find a quorum write at once.
    assert.deepEqual(load.reported('staleRead'), [], 'no quorum read missed a quorum write');
    await allThere('a', ROWS);
    await allThere('b', stats.acked[1]);
    // Its own copy: the rows of table a read at ONE from cs-1 alone (3 replicas of 3 members: it holds every row).
    await allThere('a', ROWS, ['--only', victimMember.ip, '--consistency', 'one']);
  });

  it('backs up while a client writes (every member snapshotted at once, the snapshots cleared) and restores as cs2 with the same tokens: every row acknowledged before the backup began is there; a restore drill verifies it', async (t) => {
    const addr = bed.nodes[live()[0]].addr;
    const ok = cliOk(cli, addr, () => serviceContext(bed, 'cs2', live()));
    await ok(['backup', 'target', 'set', `dir:${path.join(bed.shared, 'backups')}`]);
    await cql('e', ['setup']);
    const logsBefore = bed.nodes.map((n) => n.logs.length);
    const { ackedBefore, made, stats } = await backupUnderLoad(bed, ok, 'cs', [...clientArgs('e'), 'load'], context);
    assert.deepEqual([made.status, made.parts.map((p) => p.member).sort()], ['complete', ['cs-0', 'cs-1', 'cs-2']]);
    assert.equal(stats.errors, 0, `the ring kept serving at QUORUM through the backup: ${JSON.stringify(stats.messages)}`);
    const snapped = bed.nodes
      .flatMap((n, i) => n.logs.slice(logsBefore[i]))
      .filter((l) => l.includes('cassandra: every member snapshotted'))
      .map((l) => JSON.parse(l) as { snapshotMs: number; spreadMs: number });
    assert.equal(snapped.length, 1, 'one snapshot of every member');
    t.diagnostic(`the members' snapshots: ${snapped[0].snapshotMs} ms for all, the last ${snapped[0].spreadMs} ms after the first`);
    for (const m of (await service()).members) {
      assert.doesNotMatch(nodetool(m, ['listsnapshots']), /firecampd-/, `${m.name} keeps no snapshot once its part is archived`);
    }
    const id = await completeBackup(ok, 'cs');
    const started = Date.now();
    await ok(['backup', 'restore', id, '--as', 'cs2', '--timeout', '900']);
    t.diagnostic(`restore as cs2 → ACTIVE: ${Date.now() - started} ms`);
    const source = await service();
    const restored = await getService(cli, 'cs2', addr);
    const tokensOf = (svc: string, m: MemberView) =>
      [...docker(dockerOf(bed, ids, m), ['exec', `firecampd-${svc}-${m.name}`, 'nodetool', 'info', '-T']).matchAll(/^Token\s*:\s*(\S+)/gm)]
        .map((x) => x[1])
        .sort();
    for (const m of restored.members) {
      const from = source.members.find((x) => x.name === m.name.replace(/^cs2-/, 'cs-'))!;
      const own = tokensOf('cs2', m);
      assert.equal(own.length, 16, `${m.name} has 16 tokens`);
      assert.deepEqual(own, tokensOf('cs', from), `${m.name} owns the ranges ${from.name} owned`);
    }
    const cs2 = 'cs2-0.cs2.fc.test,cs2-1.cs2.fc.test,cs2-2.cs2.fc.test';
    await allThere('a', ROWS, [], cs2);
    // And those written while the backup ran, up to its snapshot: more rows, never fewer.
    await allThere('e', ackedBefore, [], cs2, true);
    await ok(['service', 'delete', 'cs2']);
    const drill = JSON.parse(await ok(['backup', 'verify', id, '--json', '--timeout', '900'])) as { status: string; summary: string };
    assert.equal(drill.status, 'ok', JSON.stringify(drill));
    assert.match(drill.summary, /^\d+ tables in \d+ keyspaces, the sstables of 3 members verified$/);
    assert.ok(Number(/^(\d+) tables/.exec(drill.summary)![1]) >= 3, `the drill found the tables a, b and e: ${drill.summary}`);
  });

  it('upgrades one member at a time, each drained first, while a client writes at QUORUM, losing nothing acknowledged', async (t) => {
    for (const i of live()) docker(bed.nodes[i].docker!, ['image', 'inspect', NEXT_IMAGE]);
    await cql('d', ['setup']);
    const load = startLoad(bed, [...clientArgs('d'), 'load'], context);
    try {
      await load.ready();
      const started = Date.now();
      const up = await cli(['service', 'upgrade', 'cs', '--image', NEXT_IMAGE, '--timeout', '1200', '--addr', bed.nodes[live()[0]].addr]);
      assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
      t.diagnostic(`rolling upgrade of 3 members: ${Date.now() - started} ms`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`during the upgrade: ${stats.acked[1]} written and read back at QUORUM, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    assert.ok(stats.acked[1] > 0, JSON.stringify(stats));
    assert.deepEqual(load.reported('staleRead'), [], 'no quorum read missed a quorum write');
    const after = await service();
    assert.ok(
      after.members.every((m) => m.image === NEXT_IMAGE),
      JSON.stringify(after.members),
    );
    await waitSettled(3, 60_000, 'three members Up and Normal after the upgrade');
    await allThere('d', stats.acked[1]);
    await allThere('a', ROWS);
  });
  it('scales 3 → 4: the new member bootstraps, the others are cleaned up, every row still there', async (t) => {
    const logsBefore = bed.nodes.map((n) => n.logs.length);
    const load = startLoad(bed, [...clientArgs('c'), 'load'], context);
    await cql('c', ['setup']);
    try {
      await load.ready();
      const started = Date.now();
      const up = await cli(['service', 'scale', 'cs', '4', '--timeout', '900', '--addr', bed.nodes[live()[0]].addr]);
      assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
      t.diagnostic(`scale 3 → 4 (bootstrap and cleanup): ${Date.now() - started} ms`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`while scaling: ${stats.acked[1]} written and read back at QUORUM, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    // While cs-3 turns from joining to normal, coordinators learn it by gossip a moment apart (Cassandra 5.0): a read
    // may miss a write for that moment, and the client then reads until the row shows (a row that never does fails it).
    t.diagnostic(`quorum reads that missed a quorum write at first, and found it later: ${JSON.stringify(load.reported('staleRead'))}`);
    await waitSettled(4, 60_000, 'four members Up and Normal');
    const cleaned = bed.nodes
      .flatMap((n, i) => n.logs.slice(logsBefore[i]))
      .filter((l) => l.includes('cassandra: nodetool cleanup'))
      .map((l) => (JSON.parse(l) as { member: string }).member)
      .sort();
    assert.deepEqual([...new Set(cleaned)], ['cs-0', 'cs-1', 'cs-2', 'cs-3'], 'every member cleaned up by firecampd');
    await allThere('a', ROWS);
    await allThere('c', stats.acked[1]);
  });
});
