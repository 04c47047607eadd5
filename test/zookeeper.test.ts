// ZooKeeper end to end on the test bed (3 nodes with a dockerd each, loop
// volumes on shared storage, static IPs, a client namespace), with the real
// server in the zookeeper:3.9 stand-in image:
//
// - create an ensemble of 3: one leader, two followers, myid on each volume;
//   2,000 znodes created through the members' DNS names, each acknowledged;
// - the leader's node dies (every process killed, its link down) while a
//   client writes: a new leader, the member back on a live node, every
//   acknowledged znode there;
// - a backup (the leader's newest snapshot and its transaction logs) while
//   a client writes, restored as zk2: every znode acknowledged before it
//   began is there; a restore drill (backup verify) counts the znodes;
// - a schedule with --backup-verify: a scheduled backup is drilled, the
//   result in service get (service.test.ts drills a damaged backup);
// - scale 3 → 5 → 3 by dynamic reconfiguration while a client writes: the
//   voters follow, nothing acknowledged is lost;
// - a rolling upgrade to another tag while a client writes: the followers
//   first, the leader last, nothing acknowledged lost.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zookeeper as zookeeperType } from '../src/catalog/services/zookeeper/zookeeper.ts';
import { image as zookeeperImage } from '../src/catalog/services/zookeeper/image.ts';
import type { TestBed } from './bed/bed.ts';
import { docker } from './bed/docker.ts';
import { REPO } from './helpers/proc.ts';
import type { Cli, MemberView, ServiceView } from './helpers/service-bed.ts';
import {
  assertWalled,
  backupUnderLoad,
  cliOk,
  completeBackup,
  dockerOf,
  getService,
  runClient,
  serviceContext,
  servicePassword,
  startLoad,
  startServiceBed,
} from './helpers/service-bed.ts';
import { pollUntil } from './helpers/wait.ts';
const ZOOKEEPER_IMAGE = zookeeperType.image;

const LEASE_TTL = 8;
const ZNODES = 2000;
/** The same build under its exact version's tag: an upgrade restarts every member all the same. */
const NEXT_IMAGE = zookeeperImage.tags![0];
const CLIENT = path.join(REPO, 'test', 'helpers', 'zk-client.ts');

/** A member with its role in the ensemble (leader, follower), as `service get` shows it. */
type Member = MemberView & { role: string | null };

describe('zookeeper', { timeout: 1_500_000 }, () => {
  let bed: TestBed;
  let cli: Cli;
  let ids: string[] = [];
  const dead = new Set<number>();
  const live = () => [0, 1, 2].filter((i) => !dead.has(i));
  const context = () => serviceContext(bed, 'zk', live());
  // The client knows the first three members, as a client configured at create would.
  const HOSTS = 'zk-0.zk.fc.test,zk-1.zk.fc.test,zk-2.zk.fc.test';
  const clientArgs = (prefix: string, hosts = HOSTS) => [
    process.execPath,
    '--import',
    'tsx',
    CLIENT,
    '--dns',
    bed.nodes.map((n) => `${n.ip}:53`).join(','),
    '--hosts',
    hosts,
    '--prefix',
    prefix,
  ];
  const zkClient = async (prefix: string, args: string[], hosts = HOSTS) =>
    runClient<{
      acked?: [number, number];
      errors?: number;
      present?: number;
      missing?: string[];
      missingCount?: number;
    }>(bed, [...clientArgs(prefix, hosts), ...args], 300_000);
  const service = async () => getService<ServiceView<Member>>(cli, 'zk', bed.nodes[live()[0]].addr);
  /** The voters' myids as the ensemble has them (/zookeeper/config), asked in one member. */
  const voters = (m: MemberView) =>
    [
      ...docker(dockerOf(bed, ids, m), ['exec', `firecampd-zk-${m.name}`, 'zkCli.sh', '-server', `${m.name}.zk.fc.test:2181`, 'config']).matchAll(
        /^server\.(\d+)=.*:participant/gm,
      ),
    ]
      .map((x) => Number(x[1]))
      .sort();
  /** One leader, every other member a follower, as `service get` shows them. */
  const settled = (s: ServiceView<Member>, n: number) =>
    s.status === 'ACTIVE' &&
    s.members.length === n &&
    s.members.every((m) => m.state === 'running' && !dead.has(ids.indexOf(m.node))) &&
    s.members.filter((m) => m.role === 'leader').length === 1 &&
    s.members.filter((m) => m.role === 'follower').length === n - 1;
  const allThere = async (prefix: string, n: number, hosts = HOSTS) => {
    const r = await pollUntil(
      () => zkClient(prefix, ['check', String(n)], hosts),
      (c) => c.missingCount === 0,
      { ms: 30_000, what: `every acknowledged znode under ${prefix} (1..${n})`, context },
    );
    assert.equal(r.present, n);
  };

  before(async () => {
    ({ bed, cli, ids } = await startServiceBed({ leaseTtl: LEASE_TTL, images: [ZOOKEEPER_IMAGE], outside: true }));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('creates an ensemble of 3 with a leader and two followers, and takes 2,000 acknowledged creates by the members names', async (t) => {
    const started = Date.now();
    const create = await cli([
      'service',
      'create',
      '--type',
      'zookeeper',
      '--name',
      'zk',
      '--replicas',
      '3',
      '--heap-mib',
      '128',
      '--volume-size',
      '128',
      '--journal-volume-size',
      '64',
      '--allow',
      `${bed.client!.ip}/32`,
      '--addr',
      bed.nodes[1].addr,
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${context()}`);
    t.diagnostic(`create → ACTIVE: ${Date.now() - started} ms`);
    const s = await pollUntil(service, (v) => settled(v, 3), { ms: 30_000, what: 'a leader and two followers in service get', context });
    assert.equal(new Set(s.members.map((m) => m.node)).size, 3, 'one member per node');
    for (const m of s.members) {
      const d = dockerOf(bed, ids, m);
      assert.equal(docker(d, ['exec', `firecampd-zk-${m.name}`, 'cat', '/data/zk/myid']), String(Number(m.name.split('-')[1]) + 1), `${m.name}'s myid`);
      assert.match(docker(d, ['exec', `firecampd-zk-${m.name}`, 'ls', '/datalog/zk']), /version-2/, `${m.name}'s transaction log on its journal volume`);
    }
    assert.deepEqual(voters(s.members[0]), [1, 2, 3]);
    // The wall: the client port and the election port, from the access list's namespace and from outside it.
    await assertWalled(bed, s.members, [2181, 3888]);

    const superPassword = await servicePassword(cli, 'zk', 'super', bed.nodes[0].addr);
    assert.match(superPassword, /^[A-Za-z0-9_-]{32}$/);
    for (const n of bed.nodes) assert.ok(!n.logs.some((l) => l.includes(superPassword)), `no secret in ${n.ns}'s log`);

    const created = await zkClient('/a', ['create', String(ZNODES)]);
    assert.deepEqual([created.acked, created.errors], [[1, ZNODES], 0], JSON.stringify(created));
    await allThere('/a', ZNODES);
  });

  it("survives the death of the leader's node: a new leader, the member back elsewhere, every acknowledged znode there", async (t) => {
    const before = await pollUntil(service, (v) => settled(v, 3), { ms: 30_000, what: 'a settled ensemble', context });
    const leader = before.members.find((m) => m.role === 'leader')!;
    const victim = ids.indexOf(leader.node);
    const load = startLoad(bed, [...clientArgs('/b'), 'load'], context);
    try {
      await load.ready();
      const killedAt = Date.now();
      bed.die(victim);
      dead.add(victim);
      // The ensemble's election and the client's return, timed apart: a client connected to the dead server notices only when
      // its reads time out (2/3 of its 15 s session), as a dead machine answers nothing.
      const elected = pollUntil(service, (v) => v.members.some((m) => m.role === 'leader' && m.name !== leader.name), {
        ms: 120_000,
        what: 'another member leading (service get, refreshed every 3 s)',
        context,
      }).then(
        () => `${Date.now() - killedAt} ms`,
        // Only timed here: the wait for a settled ensemble below fails the test if there is none.
        (err: Error) => `none seen (${err.message.split('\n')[0]})`,
      );
      const resumed = await load.resumedAfter(killedAt, 120_000);
      t.diagnostic(`kill of the leader's node → a new leader seen by the catalog: ${await elected} (its roles refresh every 3 s)`);
      t.diagnostic(`kill of the leader's node → first acknowledged create: ${resumed ? resumed - killedAt : 'no outage over 1 s'} ms`);
      const after = await pollUntil(service, (v) => settled(v, 3), { ms: 120_000, what: 'three members in the ensemble again, on the live nodes', context });
      const moved = after.members.find((m) => m.name === leader.name)!;
      assert.notEqual(moved.node, leader.node, 'the dead leader came back on another node');
      assert.equal(moved.ip, leader.ip, 'with its address');
      t.diagnostic(`kill → ensemble of 3 again: ${Date.now() - killedAt} ms; new leader ${after.members.find((m) => m.role === 'leader')!.name}`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`during the failover: ${stats.acked[1]} acknowledged, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    assert.ok(stats.acked[1] > 0, JSON.stringify(stats));
    await allThere('/a', ZNODES);
    await allThere('/b', stats.acked[1]);
  });

  it('backs up while a client writes and restores as zk2: every znode acknowledged before the backup began is there; a restore drill counts its znodes', async (t) => {
    const addr = bed.nodes[live()[0]].addr;
    const ok = cliOk(cli, addr, () => serviceContext(bed, 'zk2', live()));
    await ok(['backup', 'target', 'set', `dir:${path.join(bed.shared, 'backups')}`]);
    const { ackedBefore, made, stats } = await backupUnderLoad(bed, ok, 'zk', [...clientArgs('/d'), 'load'], context);
    assert.deepEqual([made.status, made.parts.map((p) => p.name)], ['complete', ['data']]);
    assert.equal(stats.errors, 0, `the ensemble kept serving through the backup: ${JSON.stringify(stats.messages)}`);
    const id = await completeBackup(ok, 'zk');
    const started = Date.now();
    await ok(['backup', 'restore', id, '--as', 'zk2', '--timeout', '300']);
    t.diagnostic(`restore as zk2 → ACTIVE: ${Date.now() - started} ms`);
    const zk2 = 'zk2-0.zk2.fc.test,zk2-1.zk2.fc.test,zk2-2.zk2.fc.test';
    await allThere('/a', ZNODES, zk2);
    await allThere('/d', ackedBefore, zk2);
    await ok(['service', 'delete', 'zk2']);
    const drill = JSON.parse(await ok(['backup', 'verify', id, '--json'])) as { status: string; summary: string };
    assert.equal(drill.status, 'ok');
    const znodes = Number(/^(\d+) znodes$/.exec(drill.summary)?.[1]);
    assert.ok(znodes >= ZNODES + ackedBefore, `the drill counted ${drill.summary}: at least ${ZNODES + ackedBefore}`);
  });

  it('drills each scheduled backup with --backup-verify: the result in service get, the throwaway service removed', async (t) => {
    const addr = bed.nodes[live()[0]].addr;
    const ok = cliOk(cli, addr, () => context());
    const refused = await cli(['backup', 'schedule', 'zk', '--backup-verify', '--addr', addr]);
    assert.notEqual(refused.code, 0, 'no drill of scheduled backups without a schedule');
    assert.match(refused.stderr, /give --backup-schedule too/);
    type Drilled = ServiceView<Member> & { backups: { last_drill: { id: string; backup: string; status: string; summary: string } | null } };
    // The drill `backup verify` ran above is the last one until a scheduled backup is drilled.
    const before = (await getService<Drilled>(cli, 'zk', addr)).backups.last_drill?.id;
    const started = Date.now();
    // Every 30 s: the first scheduled backup comes within half a minute.
    await ok(['backup', 'schedule', 'zk', '--backup-schedule', '*/30 * * * * *', '--backup-verify']);
    const drilled = await pollUntil(
      () => getService<Drilled>(cli, 'zk', addr),
      (s) => s.backups.last_drill !== null && s.backups.last_drill.id !== before && s.backups.last_drill.status !== 'running',
      { ms: 300_000, what: 'a restore drill of a scheduled backup, ended', context },
    );
    await ok(['backup', 'schedule', 'zk', '--backup-schedule', 'none', '--no-backup-verify']);
    t.diagnostic(`schedule set → its first backup drilled: ${Date.now() - started} ms`);
    const drill = drilled.backups.last_drill!;
    assert.equal(drill.status, 'ok', JSON.stringify(drill));
    assert.match(drill.summary, /^\d+ znodes$/);
    const backups = (JSON.parse(await ok(['backup', 'list', 'zk', '--json'])) as { backups: { id: string; scheduled?: boolean }[] }).backups;
    assert.ok(backups.find((b) => b.id === drill.backup)?.scheduled, `the drilled backup ${drill.backup} is a scheduled one`);
    // The drill's throwaway service is removed.
    await pollUntil(
      async () => JSON.parse(await ok(['service', 'list', '--json'])) as { services: { spec: { name: string } }[] },
      (l) => !l.services.some((x) => x.spec.name.startsWith('verify-')),
      { ms: 120_000, what: 'the drill service removed', context },
    );
  });

  it('scales 3 → 5 → 3 by dynamic reconfiguration while a client writes, losing nothing acknowledged', async (t) => {
    const load = startLoad(bed, [...clientArgs('/c'), 'load'], context);
    try {
      await load.ready();
      let started = Date.now();
      const up = await cli(['service', 'scale', 'zk', '5', '--addr', bed.nodes[live()[0]].addr]);
      assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
      t.diagnostic(`scale 3 → 5: ${Date.now() - started} ms`);
      let s = await pollUntil(service, (v) => settled(v, 5), { ms: 60_000, what: 'five members: a leader and four followers', context });
      assert.deepEqual(voters(s.members[0]), [1, 2, 3, 4, 5]);
      started = Date.now();
      const down = await cli(['service', 'scale', 'zk', '3', '--addr', bed.nodes[live()[0]].addr]);
      assert.equal(down.code, 0, `${down.stderr}\n${context()}`);
      t.diagnostic(`scale 5 → 3: ${Date.now() - started} ms`);
      s = await pollUntil(service, (v) => settled(v, 3), { ms: 60_000, what: 'three members again', context });
      assert.deepEqual(voters(s.members[0]), [1, 2, 3]);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`while scaling: ${stats.acked[1]} acknowledged, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    await allThere('/c', stats.acked[1]);
    await allThere('/a', ZNODES);
  });

  it('upgrades one member at a time while a client writes: the followers first, the leader last, nothing acknowledged lost', async (t) => {
    for (const i of live()) docker(bed.nodes[i].docker!, ['image', 'inspect', NEXT_IMAGE]);
    const before = await pollUntil(service, (v) => settled(v, 3), { ms: 30_000, what: 'a settled ensemble', context });
    const leader = before.members.find((m) => m.role === 'leader')!;
    const logsBefore = bed.nodes.map((n) => n.logs.length);
    const load = startLoad(bed, [...clientArgs('/d'), 'load'], context);
    try {
      await load.ready();
      const started = Date.now();
      const up = await cli(['service', 'upgrade', 'zk', '--image', NEXT_IMAGE, '--timeout', '600', '--addr', bed.nodes[live()[0]].addr]);
      assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
      t.diagnostic(`rolling upgrade of 3 members: ${Date.now() - started} ms`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`during the upgrade: ${stats.acked[1]} acknowledged, ${stats.errors} errors, longest gap ${stats.longestGapMs} ms`);
    const after = await pollUntil(service, (v) => settled(v, 3), { ms: 60_000, what: 'a settled ensemble after the upgrade', context });
    assert.ok(
      after.members.every((m) => m.image === NEXT_IMAGE),
      JSON.stringify(after.members),
    );
    // The catalog's own record of the order, from whichever node led it.
    const rolled = bed.nodes
      .flatMap((n, i) => n.logs.slice(logsBefore[i]))
      .filter((l) => l.includes('rolling a member'))
      .map((l) => JSON.parse(l) as { time: number; member: string })
      .sort((a, b) => a.time - b.time)
      .map((l) => l.member);
    assert.equal(rolled.length, 3, `three restarts: ${rolled.join(', ')}`);
    assert.equal(rolled.at(-1), leader.name, `the leader (${leader.name}) last: ${rolled.join(', ')}`);
    await allThere('/d', stats.acked[1]);
    await allThere('/a', ZNODES);
  });
});
