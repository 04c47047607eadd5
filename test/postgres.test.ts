// PostgreSQL end to end on the test bed (3 nodes with a dockerd each, loop
// volumes on shared storage, static IPs, a client namespace), with the real
// server in the postgres:15 stand-in image:
//
// - create 3 members: a primary and two streaming standbys, each with a
//   journal volume for its WAL; generated passwords that work, a wrong one
//   refused, no secret in any log or in `service get --json`; TLS from the
//   cluster CA (clients verify-full, replication over it, plaintext
//   refused); an access
//   list that lets the client namespace in and drops a second, outside one;
// - 10,000 inserts through primary.pg.<domain>, each acknowledged;
// - the primary's node dies (every process killed, its link down): the
//   primary serves again elsewhere, every acknowledged row is there, both
//   standbys stream from it; the wall followed it;
// - `service config --allow` lets the outside namespace in without a
//   restart, and out again;
// - a backup to an S3 bucket (S3Proxy) while a client inserts, WAL archived
//   on; a table dropped; a restore as pg2 to a second before: every row
//   acknowledged before that moment, none sent after, the table whole;
// - a rolling upgrade to another tag while a client inserts: standbys first,
//   one switchover, no acknowledged insert lost; the backup restored again
//   after it has every row of the upgrade (the archive followed the switchover);
// - scale 3 → 4 → 2, the slots following the members;
// - a second service with certificates of 144 s: the catalog renews them by a
//   rolling restart while a client inserts, nothing acknowledged lost.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { TestBed } from './bed/bed.ts';
import { docker } from './bed/docker.ts';
import { imageNames } from '../scripts/images.ts';
import { image as postgresImage } from '../src/catalog/services/postgres/image.ts';
import { REPO } from './helpers/proc.ts';
import type { Cli, MemberView, ServiceView } from './helpers/service-bed.ts';
import {
  assertWalled,
  dockerOf,
  getService,
  inClientNamespace,
  runClient,
  serviceContext,
  serviceCaFile,
  serviceCredentials,
  servicePassword,
  startLoad,
  startServiceBed,
  tcpProbe,
} from './helpers/service-bed.ts';
import { pollUntil } from './helpers/wait.ts';
import { startS3Server, type S3Server } from './helpers/s3-server.ts';
import { startBedPrometheus, type Prometheus } from './helpers/prometheus.ts';

const execFileAsync = promisify(execFile);
const LEASE_TTL = 8;
const ROWS = 10_000;
// The same stand-in under its exact version's name (postgres:15.N, from this machine's Debian package): an upgrade to it
// is an upgrade to a new image name, as from a registry.
const NEXT_IMAGE = imageNames(postgresImage).find((n) => /^postgres:15\.\d+$/.test(n))!;
const CLIENT = path.join(REPO, 'test', 'helpers', 'pg-client.ts');
const PRIMARY = 'primary.pg.fc.test';

/** A member with its health and role (primary, standby), as `service get` shows it. */
type Member = MemberView & { health: string | null; role: string | null };
/** And the service with the member that is primary. */
interface PgView extends ServiceView<Member> {
  state?: { primary?: string };
  access: { allow: string[]; default: boolean };
}

describe('postgres', { timeout: 1_500_000 }, () => {
  let bed: TestBed;
  let ids: string[] = [];
  let cli: Cli;
  let password = '';
  let replicationPassword = '';
  /** What `service ca pg` printed: every client here verifies the members' certificates against it. */
  let caFile = '';
  const dead = new Set<number>();
  let s3: S3Server | undefined;
  /** The backup the PITR test made: the upgrade test restores it again, after the switchover. */
  let backupId = '';
  /** A real Prometheus in the client namespace, finding the members through every node's discovery. */
  let prometheus: Prometheus | undefined;
  const live = () => [0, 1, 2].filter((i) => !dead.has(i));
  const clientArgs = (user = 'postgres', pw = password) => [
    process.execPath,
    '--import',
    'tsx',
    CLIENT,
    '--dns',
    bed.nodes.map((n) => `${n.ip}:53`).join(','),
    '--host',
    PRIMARY,
    '--user',
    user,
    '--password',
    pw,
    '--ca',
    caFile,
  ];
  const pgClient = async (args: string[], user?: string, pw?: string) => runClient<any>(bed, [...clientArgs(user, pw), ...args], 300_000);
  /** SQL as the superuser on one member, from the client namespace (psql from Debian's postgresql-client). */
  const psql = async (ip: string, sql: string, sslmode = 'verify-full') =>
    (
      await execFileAsync('nsenter', inClientNamespace(bed, ['psql', '-h', ip, '-U', 'postgres', '-d', 'postgres', '-AtX', '-c', sql]), {
        encoding: 'utf8',
        timeout: 15_000,
        env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: '3', PGSSLMODE: sslmode, PGSSLROOTCERT: caFile },
      })
    ).stdout.trim();
  const service = async () => getService<PgView>(cli, 'pg', bed.nodes[live()[0]].addr);
  const primaryMember = (s: PgView) => s.members.find((m) => m.name === s.state?.primary)!;
  /** Every other member streams from the primary, as the primary itself sees it. */
  const allStreaming = async (s: PgView) => {
    const primary = primaryMember(s);
    if ((await psql(primary.ip, 'SELECT pg_is_in_recovery()')) !== 'f') return false;
    const streaming = (await psql(primary.ip, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")).split('\n').filter(Boolean);
    return s.members.filter((m) => m !== primary).every((m) => streaming.includes(m.name));
  };
  const context = () => serviceContext(bed, 'pg', live());
  before(async () => {
    ({ bed, cli, ids } = await startServiceBed({ leaseTtl: LEASE_TTL, outside: true }));
  });
  after(async () => {
    s3?.stop();
    await prometheus?.stop();
    await bed?.destroy();
  });

  it('creates a primary and two streaming standbys with generated passwords, and takes 10,000 acknowledged inserts by the primary name', async (t) => {
    const started = Date.now();
    const create = await cli([
      'service',
      'create',
      '--type',
      'postgres',
      '--name',
      'pg',
      '--replicas',
      '3',
      '--volume-size',
      '256',
      '--journal-volume-size',
      '128',
      '--allow',
      `${bed.client!.ip}/32`,
      '--addr',
      bed.nodes[1].addr,
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${context()}`);
    t.diagnostic(`create → ACTIVE: ${Date.now() - started} ms`);
    assert.match(create.stdout, /pg: ACTIVE/);

    caFile = await serviceCaFile(cli, 'pg', bed.nodes[0].addr);
    assert.equal(fs.readFileSync(caFile, 'utf8'), fs.readFileSync(path.join(bed.nodes[0].dataDir, 'tls', 'ca.crt'), 'utf8'), "the cluster's CA");
    const list = (await serviceCredentials(cli, 'pg', bed.nodes[0].addr)).credentials;
    password = list.find((c) => c.user === 'postgres')!.value;
    replicationPassword = list.find((c) => c.user === 'replicator')!.value;
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);

    // ACTIVE means the standbys streamed; the roles shown by `service get` come from the catalog's look a moment later.
    const s = await pollUntil(service, (v) => v.members.filter((m) => m.role === 'standby').length === 2, {
      ms: 30_000,
      what: 'service get to show a primary and two streaming standbys',
      context,
    });
    assert.equal(s.state?.primary, 'pg-0');
    assert.equal(s.members.find((m) => m.name === 'pg-0')!.role, 'primary');
    assert.ok(await allStreaming(s), 'both standbys stream from the primary');
    assert.equal(new Set(s.members.map((m) => m.node)).size, 3, 'one member per node');
    // TLS: every member's certificate verifies against `service ca` for its address (psql's verify-full), replication
    // runs over it, plaintext is refused, and each key is the server's alone.
    assert.equal((s as PgView & { tls: { enabled: boolean } }).tls.enabled, true);
    assert.equal(
      await psql(primaryMember(s).ip, "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE s.ssl AND r.state = 'streaming'"),
      '2',
    );
    const plaintext = await psql(primaryMember(s).ip, 'SELECT 1', 'disable').catch((err: Error) => err);
    assert.ok(plaintext instanceof Error && /no pg_hba\.conf entry .*no encryption/.test(plaintext.message), `plaintext refused: ${String(plaintext)}`);
    for (const m of s.members) {
      assert.equal(await psql(m.ip, 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()'), 't', `${m.name} verified and encrypted`);
      assert.equal(docker(dockerOf(bed, ids, m), ['exec', `firecampd-pg-${m.name}`, 'stat', '-c', '%a %U', '/data/tls/server.key']), '600 postgres');
    }
    // The wall: the client namespace is on the access list, the outside one is not.
    assert.deepEqual(s.access, { allow: [`${bed.client!.ip}/32`], default: false });
    await assertWalled(bed, s.members, [5432]);
    // WAL lives on the journal volume.
    for (const m of s.members) {
      const d = dockerOf(bed, ids, m);
      assert.equal(
        docker(d, ['exec', `firecampd-pg-${m.name}`, 'readlink', '/data/pgdata/pg_wal']),
        '/journal/pg_wal',
        `${m.name}'s WAL on its journal volume`,
      );
    }

    const wrong = await pgClient(['count'], 'postgres', 'not-the-password').catch((err: Error) => err);
    assert.ok(wrong instanceof Error && /password authentication failed/.test(wrong.message), `a wrong password is refused: ${String(wrong)}`);
    const inserted = await pgClient(['insert', String(ROWS)]);
    assert.deepEqual([inserted.acked, inserted.errors], [[1, ROWS], 0], JSON.stringify(inserted));
    assert.deepEqual(await pgClient(['count']), { rows: ROWS, max: ROWS });

    // No secret anywhere a person or a script would look.
    const view = (await cli(['service', 'get', 'pg', '--json', '--addr', bed.nodes[2].addr])).stdout;
    for (const secret of [password, replicationPassword]) {
      assert.ok(!view.includes(secret), 'no secret in service get --json');
      for (const n of bed.nodes) assert.ok(!n.logs.some((l) => l.includes(secret)), `no secret in ${n.ns}'s log`);
    }
    for (const i of [0, 1, 2]) {
      const d = bed.nodes[i].docker!;
      const names = docker(d, ['ps', '--format', '{{.Names}}']).split('\n').filter(Boolean);
      for (const name of names) {
        const inspect = docker(d, ['inspect', name]);
        assert.ok(!inspect.includes(password) && !inspect.includes(replicationPassword), `no secret in docker inspect ${name}`);
      }
    }
  });

  it("is found and scraped by a real Prometheus through the nodes' discovery: every member's exporter, labelled with service, type, member, role, node and zone", async () => {
    const s = await service();
    prometheus = await startBedPrometheus(bed, caFile);
    const prom = prometheus;
    const up = await pollUntil(
      () => prom.query('pg_up{role!=""}'),
      (r) => r.length === 3 && r.every((x) => x.value === 1),
      { ms: 60_000, what: 'pg_up 1 for the 3 members, with their roles', context: () => prom.log() },
    );
    assert.deepEqual(
      up.map((r) => [r.metric.member, r.metric.service, r.metric.type, r.metric.node, r.metric.zone, r.metric.role]).sort(),
      s.members.map((m) => [m.name, 'pg', 'postgres', m.node, 'default', m.name === s.state?.primary ? 'primary' : 'standby']).sort(),
    );
    // The nodes' own gauges of the members they run: each member told of once, by the node that runs it, up.
    const told = await pollUntil(
      () => prom.query('firecampd_member_up{service="pg"}'),
      (r) => r.length === 3 && r.every((x) => x.value === 1),
      { ms: 30_000, what: 'firecampd_member_up 1 for the 3 members', context: () => prom.log() },
    );
    assert.deepEqual(told.map((r) => [r.metric.member, r.metric.node]).sort(), s.members.map((m) => [m.name, m.node]).sort());
  });

  it("survives the death of the primary's node: the primary serves again elsewhere with every acknowledged row, and both standbys stream from it", async (t) => {
    const before = await service();
    const primary = primaryMember(before);
    const victim = ids.indexOf(primary.node);
    const load = startLoad(bed, [...clientArgs(), 'load'], context);
    let killedAt = 0;
    try {
      await load.ready();
      killedAt = Date.now();
      bed.die(victim);
      dead.add(victim);
      const resumed = await load.resumedAfter(killedAt, 120_000);
      t.diagnostic(`kill of the primary's node → first acknowledged insert: ${resumed - killedAt} ms`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`during the failover: ${stats.acked[1] - stats.acked[0] + 1} acknowledged, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    const after = await pollUntil(
      service,
      (s) => s.status === 'ACTIVE' && s.members.every((m) => m.state === 'running' && m.health === 'healthy' && m.node !== ids[victim]),
      { ms: 120_000, what: 'every member running again on the live nodes', context },
    );
    assert.equal(after.state?.primary, primary.name, 'the primary stays the same member');
    assert.equal(primaryMember(after).ip, primary.ip, 'with the same address');
    await pollUntil(() => allStreaming(after), Boolean, { ms: 90_000, what: 'both standbys to stream from the moved primary', context });
    // What the platform did, as `events --service pg` tells it: the primary's lease lost with its node, then the member
    // moved, started and healthy on its new node, in that order.
    const told = await pollUntil(
      async () => {
        const r = await cli(['events', '--service', 'pg', '--json', '--addr', bed.nodes[live()[0]].addr]);
        assert.equal(r.code, 0, r.stderr);
        const events = (JSON.parse(r.stdout) as { events: { at: string; kind: string; member?: string; node?: string }[] }).events;
        return events.filter((e) => e.member === primary.name && Date.parse(e.at) >= killedAt);
      },
      (evs) => evs.some((e) => e.kind === 'healthy'),
      { ms: 30_000, what: `the events of ${primary.name}'s move`, context },
    );
    const first = (kind: string) => told.find((e) => e.kind === kind);
    const moved = primaryMember(after).node;
    assert.deepEqual(
      ['lease-lost', 'moved', 'started', 'healthy'].map((k) => [k, first(k)?.node]),
      [
        ['lease-lost', ids[victim]],
        ['moved', moved],
        ['started', moved],
        ['healthy', moved],
      ],
      JSON.stringify(told),
    );
    const at = ['lease-lost', 'moved', 'started', 'healthy'].map((k) => told.indexOf(first(k)!));
    assert.deepEqual(
      at,
      [...at].sort((a, b) => a - b),
      `in order: ${told.map((e) => e.kind).join(', ')}`,
    );
    const count = await pgClient(['count']);
    assert.ok(count.rows >= stats.acked[1], `every acknowledged row is there: ${count.rows} rows, ${stats.acked[1]} acknowledged`);
    assert.equal(count.rows, count.max, 'no gap in the ids');
    // The wall moved with the primary to its new node.
    await assertWalled(bed, after.members, [5432]);

    // Its metrics carry on under the same member label, from its new node; the old node's target is gone.
    const prom = prometheus!;
    await pollUntil(
      () => prom.query(`pg_up{member="${primary.name}"}`),
      (r) => r.length === 1 && r[0].metric.node === moved && r[0].value === 1,
      { ms: 60_000, what: `pg_up of ${primary.name} from its new node ${moved}`, context: () => prom.log() },
    );
    const stale = (await prom.targets()).filter((x) => x.labels.member === primary.name && x.labels.node === ids[victim]);
    assert.deepEqual(stale, [], "no target left at the dead node's member");

    // Its log moved with it: what it wrote before the move and after, in order, the move marked.
    const logs = await cli(['service', 'logs', 'pg', '--member', primary.name, '--addr', bed.nodes[live()[0]].addr]);
    assert.equal(logs.code, 0, logs.stderr);
    const lines = logs.stdout.split('\n');
    const startedThere = lines.findIndex((l) => l.includes(`--- firecampd: ${primary.name} started on node ${ids[victim]} `));
    const movedHere = lines.findIndex(
      (l) => l.includes(`--- firecampd: ${primary.name} started on node ${moved} `) && l.includes(`moved here from node ${ids[victim]}`),
    );
    assert.ok(
      startedThere >= 0 && movedHere > startedThere,
      `a start on ${ids[victim]}, then the move to ${moved}:\n${lines.filter((l) => l.startsWith('---')).join('\n')}`,
    );
    const ready = (from: number, to: number) => lines.slice(from, to).some((l) => l.includes('database system is ready to accept connections'));
    assert.ok(ready(startedThere, movedHere), 'its lines from before the move');
    assert.ok(ready(movedHere, lines.length), 'and after it');
  });

  it('lets a second network in with service config --allow, in place (no member restarts), and shuts it out again', async () => {
    const addr = bed.nodes[live()[0]].addr;
    const before = await service();
    const startedAt = (m: Member) => docker(dockerOf(bed, ids, m), ['inspect', '-f', '{{.State.StartedAt}}', `firecampd-pg-${m.name}`]);
    const started = before.members.map(startedAt);
    const primary = primaryMember(before);
    const both = [`${bed.client!.ip}/32`, `${bed.outside!.ip}/32`];
    const r = await cli(['service', 'config', 'pg', '--allow', both.join(','), '--json', '--addr', addr]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((JSON.parse(r.stdout) as { access: PgView['access'] }).access, { allow: both, default: false });
    await pollUntil(
      () => tcpProbe(bed.outside!.ns, primary.ip, 5432),
      (p) => p === 'open',
      { ms: 20_000, what: 'the outside namespace let in', context },
    );
    const now = await service();
    assert.deepEqual(
      now.members.map((m) => [m.name, m.epoch]),
      before.members.map((m) => [m.name, m.epoch]),
      'no member moved',
    );
    assert.deepEqual(now.members.map(startedAt), started, 'no container restarted');
    assert.equal(now.status, 'ACTIVE');
    const bad = await cli(['service', 'config', 'pg', '--allow', '10.77.0/24', '--addr', addr]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /"10\.77\.0\/24" is not an IPv4 network; write it as ADDRESS\/PREFIX/);
    const back = await cli(['service', 'config', 'pg', '--allow', `${bed.client!.ip}/32`, '--addr', addr]);
    assert.equal(back.code, 0, back.stderr);
    assert.match(back.stdout, new RegExp(`access: the cluster's nodes, the members and ${bed.client!.ip}/32; every other packet`));
    await pollUntil(
      () => tcpProbe(bed.outside!.ns, primary.ip, 5432),
      (p) => p === 'dropped',
      { ms: 20_000, what: 'the outside namespace shut out again', context },
    );
    await assertWalled(bed, now.members, [5432]);
  });

  it('backs up to an S3 bucket while a client inserts, and restores as pg2 to a second before a table was dropped: every row committed before, none after', async (t) => {
    const addr = () => bed.nodes[live()[0]].addr;
    s3 = await startS3Server(bed.gateway);
    const target = `s3://${s3.bucket}/bed`;
    const setTarget = (secret: string) =>
      cli(['backup', 'target', 'set', target, '--endpoint', s3!.endpoint, '--access-key-id', s3!.accessKeyId, '--secret-access-key', secret, '--addr', addr()]);
    const wrong = await setTarget('wrong');
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /bucket backups at http:\/\/.* refused a test object .*check the bucket's name, --endpoint, --region and the credentials/);
    const set = await setTarget(s3.secretAccessKey);
    assert.equal(set.code, 0, set.stderr);

    const primary = primaryMember(await service());
    await psql(primary.ip, 'CREATE TABLE precious AS SELECT generate_series(1, 1000) AS n');
    const load = startLoad(bed, [...clientArgs(), '--stamps', 'load'], context);
    let dropAt: number;
    try {
      await load.ready();
      const made = await cli(['backup', 'create', 'pg', '--wait', '--json', '--addr', addr()]);
      assert.equal(made.code, 0, `${made.stderr}\n${context()}`);
      const rec = JSON.parse(made.stdout) as { id: string; status: string; parts: { name: string }[] };
      assert.equal(rec.status, 'complete');
      assert.deepEqual(
        rec.parts.map((p) => p.name),
        ['base'],
      );
      backupId = rec.id;
      // The scenario's timeline: the client inserts on for 40 s after the backup, the table goes, 20 s more.
      await new Promise((r) => setTimeout(r, 40_000));
      dropAt = Date.now();
      await psql(primary.ip, 'DROP TABLE precious');
      await new Promise((r) => setTimeout(r, 20_000));
    } finally {
      await load.stop();
    }
    const stats = load.result();
    assert.equal(stats.errors, 0, `the service kept serving through the backup: ${JSON.stringify(stats.messages)}`);
    const stamps = (load.reported('stamps')[0].stamps as [number, number, number][]) ?? [];
    const toTime = new Date(dropAt - 1000);

    // A moment the archive cannot reach is refused, naming what it covers.
    const early = await cli(['backup', 'restore', backupId, '--as', 'pg2', '--to-time', '2020-01-01T00:00:00Z', '--addr', addr()]);
    assert.notEqual(early.code, 0);
    assert.match(early.stderr, /--to-time 2020-01-01T00:00:00Z is outside what backup .* and its archived log cover: \S+ to \S+/);
    const bad = await cli(['backup', 'restore', backupId, '--as', 'pg2', '--to-time', 'yesterday', '--addr', addr()]);
    assert.match(bad.stderr, /not an RFC 3339 time/);

    const started = Date.now();
    const restored = await cli(['backup', 'restore', backupId, '--as', 'pg2', '--to-time', toTime.toISOString(), '--timeout', '600', '--addr', addr()]);
    assert.equal(restored.code, 0, `${restored.stderr}\n${serviceContext(bed, 'pg2', live())}`);
    t.diagnostic(`restore to ${toTime.toISOString()} → ACTIVE: ${Date.now() - started} ms; ${stamps.length} inserts stamped`);
    const pg2 = await getService<PgView>(cli, 'pg2', addr());
    const pg2Primary = primaryMember(pg2);
    assert.equal(await psql(pg2Primary.ip, 'SELECT count(*) FROM precious'), '1000', 'the dropped table is there, whole');
    const ids = new Set((await psql(pg2Primary.ip, 'SELECT id FROM acked')).split('\n').filter(Boolean).map(Number));
    const before = stamps.filter(([, , acked]) => acked < toTime.getTime());
    const after = stamps.filter(([, sent]) => sent > toTime.getTime());
    assert.ok(before.length > 100 && after.length > 100, `rows on both sides of the moment: ${before.length} before, ${after.length} after`);
    const lost = before.filter(([id]) => !ids.has(id));
    assert.deepEqual(lost.slice(0, 5), [], `every row acknowledged before ${toTime.toISOString()} is restored (${lost.length} missing)`);
    const extra = after.filter(([id]) => ids.has(id));
    assert.deepEqual(extra.slice(0, 5), [], `no row sent after ${toTime.toISOString()} is restored (${extra.length} there)`);
    for (let id = 1; id < stamps[0][0]; id++) assert.ok(ids.has(id), `row ${id}, from before the backup, is restored`);

    // The original has every acknowledged row, and no precious table.
    const count = await pgClient(['count']);
    assert.ok(count.rows >= stats.acked[1], `every acknowledged row is in pg: ${count.rows} rows, ${stats.acked[1]} acknowledged`);
    assert.match(await psql(primaryMember(await service()).ip, "SELECT count(*) FROM pg_tables WHERE tablename = 'precious'"), /^0$/);

    const gone = await cli(['service', 'delete', 'pg2', '--addr', addr()]);
    assert.equal(gone.code, 0, gone.stderr);
  });

  it('upgrades one member at a time while a client inserts: standbys first, one switchover, nothing acknowledged lost', async (t) => {
    for (const i of live()) docker(bed.nodes[i].docker!, ['image', 'inspect', NEXT_IMAGE]);
    const before = await service();
    const load = startLoad(bed, [...clientArgs(), 'load'], context);
    let upgradeMs: number | undefined;
    try {
      await load.ready();
      const started = Date.now();
      const up = await cli(['service', 'upgrade', 'pg', '--image', NEXT_IMAGE, '--timeout', '600', '--addr', bed.nodes[live()[0]].addr]);
      upgradeMs = Date.now() - started;
      assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
      assert.match(up.stderr, /UPGRADING/);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(
      `rolling upgrade of 3 members: ${upgradeMs ?? '?'} ms; the client: ${stats.acked[1] - stats.acked[0] + 1} acknowledged, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`,
    );
    const after = await service();
    assert.ok(
      after.members.every((m) => m.image === NEXT_IMAGE && m.state === 'running'),
      JSON.stringify(after.members),
    );
    assert.notEqual(after.state?.primary, before.state?.primary, 'the primary switched over to a standby');
    await pollUntil(() => allStreaming(after), Boolean, { ms: 90_000, what: 'every standby, the old primary too, to stream from the new primary', context });
    const count = await pgClient(['count']);
    assert.ok(count.rows >= stats.acked[1], `every acknowledged row is there: ${count.rows} rows, ${stats.acked[1]} acknowledged`);
    assert.equal(count.rows, count.max, 'no gap in the ids');

    // The archive kept up across the switchover (a new primary, a new timeline): the backup made before it, restored
    // to the end of its log, has every row acknowledged during the upgrade.
    assert.ok(backupId, 'the backup test ran');
    const addr = bed.nodes[live()[0]].addr;
    const restored = await cli(['backup', 'restore', backupId, '--as', 'pg3', '--timeout', '600', '--addr', addr]);
    assert.equal(restored.code, 0, `${restored.stderr}\n${serviceContext(bed, 'pg3', live())}`);
    const pg3 = primaryMember(await getService<PgView>(cli, 'pg3', addr));
    const rows = Number(await psql(pg3.ip, `SELECT count(*) FROM acked WHERE id <= ${stats.acked[1]}`));
    assert.equal(rows, stats.acked[1], 'every row acknowledged before and during the switchover, from the archive');
    const gone = await cli(['service', 'delete', 'pg3', '--addr', addr]);
    assert.equal(gone.code, 0, gone.stderr);
  });

  it('scales 3 → 4 → 2: a new standby clones and streams, a removed one takes its slot along', async () => {
    const up = await cli(['service', 'scale', 'pg', '4', '--addr', bed.nodes[live()[0]].addr]);
    assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
    let s = await service();
    assert.equal(s.members.length, 4);
    await pollUntil(() => allStreaming(s), Boolean, { ms: 90_000, what: 'four members, three standbys streaming', context });
    const keep = Number(s.state!.primary!.split('-')[1]) + 1;
    const down = await cli(['service', 'scale', 'pg', String(Math.max(2, keep)), '--addr', bed.nodes[live()[0]].addr]);
    assert.equal(down.code, 0, `${down.stderr}\n${context()}`);
    s = await service();
    assert.equal(s.members.length, Math.max(2, keep));
    const primary = primaryMember(s);
    const slots = await pollUntil(
      async () => (await psql(primary.ip, 'SELECT slot_name FROM pg_replication_slots ORDER BY 1')).split('\n').filter(Boolean),
      (have) => have.length === s.members.length - 1,
      { ms: 30_000, what: 'one slot per remaining standby', context },
    );
    assert.deepEqual(
      slots,
      s.members.filter((m) => m !== primary).map((m) => m.name.replace('-', '_')),
    );
    const count = await pgClient(['count']);
    assert.equal(count.rows, count.max);
  });

  it("renews the members' certificates by a rolling restart before they end, while a client inserts: nothing acknowledged lost", async (t) => {
    // Certificates of 144 s: the catalog restarts the service for them once they enter their last third (after 96 s).
    const addr = () => bed.nodes[live()[0]].addr;
    const create = await cli([
      'service',
      'create',
      '--type',
      'postgres',
      '--name',
      'pgr',
      '--replicas',
      '2',
      '--volume-size',
      '512',
      '--tls-cert-hours',
      '0.04',
      '--addr',
      addr(),
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${context()}`);
    const pgrContext = () => serviceContext(bed, 'pgr', live());
    const view = () => getService<PgView>(cli, 'pgr', addr());
    const certificates = (v: PgView) =>
      Object.fromEntries(
        v.members.map((m) => [m.name, new X509Certificate(docker(dockerOf(bed, ids, m), ['exec', `firecampd-pgr-${m.name}`, 'cat', '/data/tls/server.crt']))]),
      );
    const first = certificates(await view());
    const ca = new X509Certificate(fs.readFileSync(caFile));
    const args = clientArgs('postgres', await servicePassword(cli, 'pgr', 'postgres', addr())).map((a) => (a === PRIMARY ? 'primary.pgr.fc.test' : a));
    const load = startLoad(bed, [...args, 'load'], pgrContext);
    let renewed: PgView;
    try {
      await load.ready();
      renewed = await pollUntil(
        view,
        (v) =>
          v.status === 'ACTIVE' &&
          v.members.every((m) => m.state === 'running' && m.health === 'healthy') &&
          Object.entries(certificates(v)).every(([name, c]) => c.serialNumber !== first[name].serialNumber),
        { ms: 240_000, every: 1000, what: 'every member restarted with a new certificate', context: pgrContext },
      );
    } finally {
      await load.stop();
    }
    for (const [name, c] of Object.entries(certificates(renewed))) {
      assert.ok(c.verify(ca.publicKey), `${name}'s new certificate is the cluster CA's`);
      assert.ok(Date.parse(c.validTo) > Date.parse(first[name].validTo), `${name}'s lasts longer than its first`);
    }
    const r = await cli(['events', '--service', 'pgr', '--json', '--addr', addr()]);
    assert.equal(r.code, 0, r.stderr);
    const reasons = (JSON.parse(r.stdout) as { events: { kind: string; reason: string }[] }).events.filter((e) => e.kind === 'status').map((e) => e.reason);
    assert.ok(
      reasons.some((x) => /^RESTARTING: renewing the certificates of pgr-\d/.test(x)),
      `the restart said why: ${reasons.join(' | ')}`,
    );
    const stats = load.result();
    t.diagnostic(`during the renewal: ${stats.acked[1] - stats.acked[0] + 1} acknowledged, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    const count = await runClient<{ rows: number; max: number }>(bed, [...args, 'count'], 60_000);
    assert.ok(count.rows >= stats.acked[1], `every acknowledged row is there: ${count.rows} rows, ${stats.acked[1]} acknowledged`);
    assert.equal(count.rows, count.max, 'no gap in the ids');
  });
});
