// Kafka end to end on the test bed (3 nodes with a dockerd each, loop
// volumes on shared storage, static IPs, a client namespace), with the real
// broker in the apache/kafka stand-in image, in KRaft mode:
//
// - create 3 members (controllers and brokers), SASL/SCRAM with a generated
//   password, a topic with replication factor 3;
// - kafkajs produces 20,000 messages with acks=all while the node of a
//   partition leader dies (every process killed, its link down); a consumer
//   reads every acknowledged message back, and the member runs elsewhere;
// - a backup while a client makes topics, restored as kf2: every topic
//   made before it began, with its partitions and configs, and a group's
//   committed offsets; a restore drill counts the topics;
// - a rolling upgrade to another tag while producing: one broker at a time,
//   every acknowledged message read back;
// - scale 3 → 4 --rebalance → 3: a broker that is not a controller
//   registers, replicas of every topic move onto it until each broker holds
//   a fair share; before it goes, its partitions move to the brokers that stay;
// - Kafka Connect workers against it (`--kafka kf`): refused without an
//   ACTIVE Kafka, the Kafka refused deletion while they need it, a FileStream
//   sink connector put through `service connector` writing every message of
//   a topic into a file on a worker's volume; its connectors backed up and
//   restored as kc2.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kafka as kafkaType } from '../src/catalog/services/kafka/kafka.ts';
import type { TestBed } from './bed/bed.ts';
import { docker } from './bed/docker.ts';
import { REPO, tempDir } from './helpers/proc.ts';
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
  serviceCaFile,
  servicePassword,
  startLoad,
  startServiceBed,
} from './helpers/service-bed.ts';
import { startBedPrometheus } from './helpers/prometheus.ts';
import { pollUntil } from './helpers/wait.ts';
const KAFKA_IMAGE = kafkaType.image;

const LEASE_TTL = 8;
/** Batches of 100 messages: 20,000 messages. */
const BATCHES = 200;
const NEXT_IMAGE = `${KAFKA_IMAGE}-next`;
const CLIENT = path.join(REPO, 'test', 'helpers', 'kafka-client.ts');
const BROKERS = 'kf-0.kf.fc.test:9092,kf-1.kf.fc.test:9092,kf-2.kf.fc.test:9092';

/** A member with its role (broker, controller), as `service get` shows it. */
type Member = MemberView & { role: string | null };
interface Check {
  present: number;
  missingCount: number;
  missing: string[];
}

describe('kafka', { timeout: 1_500_000 }, () => {
  let bed: TestBed;
  let cli: Cli;
  let ids: string[] = [];
  let password = '';
  /** Batches of topic orders acknowledged so far. */
  let ordersAcked = 0;
  /** And of topic orders-2, written during the upgrade. */
  let orders2Acked = 0;
  const dead = new Set<number>();
  const live = () => [0, 1, 2].filter((i) => !dead.has(i));
  const context = () => serviceContext(bed, 'kf', live());
  const clientArgs = (topic: string, brokers = BROKERS) => [
    process.execPath,
    '--import',
    'tsx',
    CLIENT,
    '--dns',
    bed.nodes.map((n) => `${n.ip}:53`).join(','),
    '--brokers',
    brokers,
    '--password',
    password,
    '--topic',
    topic,
  ];
  const kafkaClient = async (topic: string, args: string[], brokers = BROKERS) =>
    runClient<Record<string, unknown>>(bed, [...clientArgs(topic, brokers), ...args], 300_000);
  const service = async () => getService<ServiceView<Member>>(cli, 'kf', bed.nodes[live()[0]].addr);
  /** kafka-topics.sh --describe of a topic (all topics without one), run in a member as admin. */
  const describe = (m: MemberView, topic?: string) =>
    docker(dockerOf(bed, ids, m), [
      'exec',
      `firecampd-kf-${m.name}`,
      '/opt/kafka/bin/kafka-topics.sh',
      '--bootstrap-server',
      `${m.name}.kf.fc.test:9092`,
      '--command-config',
      '/data/firecampd/client.properties',
      '--describe',
      ...(topic ? ['--topic', topic] : []),
    ]);
  /** The leader of each partition of a topic. */
  const leaders = (m: MemberView, topic: string) =>
    [...describe(m, topic).matchAll(/Partition: (\d+)\s+Leader: (-?\d+)/g)].map((x) => ({ partition: Number(x[1]), leader: Number(x[2]) }));
  /** Each partition's replicas (broker ids), as kafka-topics.sh in a member describes them. */
  const replicas = (m: MemberView, topic?: string) =>
    [...describe(m, topic).matchAll(/Partition: \d+\s+Leader: -?\d+\s+Replicas: ([\d,]+)/g)].map((x) => x[1].split(',').map(Number));
  const allThere = async (topic: string, batches: number) => {
    const r = (await kafkaClient(topic, ['check', String(batches)])) as unknown as Check;
    assert.equal(r.missingCount, 0, `every acknowledged message of ${topic} read back: ${JSON.stringify(r)}\n${context()}`);
  };
  const running = (s: ServiceView, n: number) =>
    s.status === 'ACTIVE' && s.members.length === n && s.members.every((m) => m.state === 'running' && !dead.has(ids.indexOf(m.node)));

  before(async () => {
    ({ bed, cli, ids } = await startServiceBed({ leaseTtl: LEASE_TTL, images: [KAFKA_IMAGE], outside: true }));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('creates 3 brokers that are also the controller quorum, with SASL/SCRAM, and a topic of replication factor 3', async (t) => {
    const started = Date.now();
    const create = await cli([
      'service',
      'create',
      '--type',
      'kafka',
      '--name',
      'kf',
      '--replicas',
      '3',
      '--heap-mib',
      '256',
      '--volume-size',
      '512',
      '--allow',
      `${bed.client!.ip}/32`,
      '--addr',
      bed.nodes[1].addr,
    ]);
    assert.equal(create.code, 0, `${create.stderr}\n${context()}`);
    t.diagnostic(`create → ACTIVE: ${Date.now() - started} ms`);
    password = await servicePassword(cli, 'kf', 'admin', bed.nodes[0].addr);
    const s = await pollUntil(service, (v) => running(v, 3) && v.members.some((m) => m.role === 'broker, active controller'), {
      ms: 30_000,
      what: 'three brokers, one the active controller',
      context,
    });
    assert.equal(new Set(s.members.map((m) => m.node)).size, 3, 'one member per node');
    // The wall: brokers and controllers, from the access list's namespace and from outside it.
    await assertWalled(bed, s.members, [9092, 9093]);
    assert.ok(
      s.members.every((m) => m.role?.includes('controller')),
      JSON.stringify(s.members),
    );
    const saved = password;
    password = 'not-the-password';
    await assert.rejects(kafkaClient('orders', ['topic', '3']), /SASL|auth/i, 'a wrong password is refused');
    password = saved;
    assert.deepEqual(await kafkaClient('orders', ['topic', '3']), { created: true });
    for (const n of bed.nodes) assert.ok(!n.logs.some((l) => l.includes(password)), `no secret in ${n.ns}'s log`);

    // Its metrics: a real Prometheus finds each broker's JMX exporter (the agent its JVM loads) through the nodes'
    // discovery: one active controller among the three, every broker with its partitions, none under-replicated.
    const prom = await startBedPrometheus(bed, await serviceCaFile(cli, 'kf', bed.nodes[0].addr));
    try {
      const q = (expr: string) => prom.query(expr);
      await pollUntil(
        () => q('kafka_server_replicamanager_partitioncount{service="kf", type="kafka"}'),
        (r) => r.length === 3 && r.every((x) => x.value >= 1),
        { ms: 60_000, what: 'the partitions of each of the 3 brokers', context: () => prom.log() },
      );
      assert.deepEqual(
        (await q('sum(kafka_controller_kafkacontroller_activecontrollercount{service="kf"})')).map((r) => r.value),
        [1],
        'one active controller',
      );
      // A topic just made may lag a moment before every replica is in sync: waited for, not read once.
      const under = await pollUntil(
        () => q('kafka_server_replicamanager_underreplicatedpartitions{service="kf"}'),
        (r) => r.length === 3 && r.every((x) => x.value === 0),
        { ms: 60_000, what: 'no partition under-replicated on any of the 3 brokers', context: () => prom.log() },
      );
      assert.deepEqual(
        under.map((r) => r.value),
        [0, 0, 0],
        'nothing under-replicated',
      );
    } finally {
      await prom.stop();
    }
  });

  it("produces 20,000 messages and more with acks=all through the death of a partition leader's node, and reads every acknowledged one back", async (t) => {
    const s = await service();
    const partition0 = leaders(s.members[0], 'orders').find((p) => p.partition === 0)!;
    const victimMember = s.members.find((m) => Number(m.name.split('-')[1]) === partition0.leader)!;
    const victim = ids.indexOf(victimMember.node);
    // What a failing wait prints: the nodes' and members' logs, and each partition's leader and in-sync replicas.
    const failoverContext = () => {
      let topic: string;
      try {
        topic = describe(
          s.members.find((m) => m.name !== victimMember.name)!,
          'orders',
        );
      } catch (err) {
        topic = `kafka-topics --describe failed: ${String(err)}`;
      }
      return `${context()}\n--- orders\n${topic}`;
    };
    const load = startLoad(bed, [...clientArgs('orders'), 'load'], failoverContext);
    try {
      await load.ackedThrough(20, 60_000);
      const killedAt = Date.now();
      bed.die(victim);
      dead.add(victim);
      const resumed = await load.resumedAfter(killedAt, 120_000);
      t.diagnostic(`kill → first acknowledged batch: ${resumed - killedAt} ms`);
      const after = await pollUntil(service, (v) => running(v, 3), {
        ms: 120_000,
        what: 'three brokers running again on the live nodes',
        context: failoverContext,
      });
      t.diagnostic(`kill → the member running elsewhere: ${Date.now() - killedAt} ms`);
      assert.equal(after.members.find((m) => m.name === victimMember.name)!.ip, victimMember.ip, 'with its address');
      await pollUntil(
        () => leaders(after.members[0], 'orders'),
        (ps) => ps.length === 3 && ps.every((p) => p.leader >= 0),
        { ms: 60_000, what: 'a leader for every partition', context: failoverContext },
      );
      // The client goes on until 20,000 messages in all are acknowledged, the death somewhere in the middle.
      await load.ackedThrough(BATCHES, 180_000);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(
      `${victimMember.name} (leader of orders/0) died; ${stats.acked[1] * 100} messages acknowledged, ${stats.errors} errors, longest produce gap ${stats.longestGapMs} ms`,
    );
    assert.ok(stats.acked[1] >= BATCHES, `at least 20,000 messages acknowledged: ${JSON.stringify(stats)}\n${failoverContext()}`);
    ordersAcked = stats.acked[1];
    await allThere('orders', ordersAcked);
  });

  it("backs up its topics (partitions, configs) and a group's offsets while a client makes topics, and restores them as kf2; a restore drill counts them", async (t) => {
    const addr = bed.nodes[live()[0]].addr;
    const ok = cliOk(cli, addr, () => serviceContext(bed, 'kf2', live()));
    await ok(['backup', 'target', 'set', `dir:${path.join(bed.shared, 'backups')}`]);
    const committed = await kafkaClient('orders', ['offsets', 'set']);
    const { ackedBefore, made, stats } = await backupUnderLoad(bed, ok, 'kf', [...clientArgs('made'), 'topics'], context, 20);
    assert.deepEqual([made.status, made.parts.map((p) => p.name)], ['complete', ['metadata']]);
    assert.equal(stats.errors, 0, `topics kept being made through the backup: ${JSON.stringify(stats.messages)}`);
    const id = await completeBackup(ok, 'kf');
    const started = Date.now();
    await ok(['backup', 'restore', id, '--as', 'kf2', '--timeout', '600']);
    t.diagnostic(`restore as kf2 → ACTIVE (its topics made, offsets committed): ${Date.now() - started} ms`);
    const kf2 = 'kf2-0.kf2.fc.test:9092,kf2-1.kf2.fc.test:9092,kf2-2.kf2.fc.test:9092';
    const topics = await kafkaClient('made', ['topics-check', String(ackedBefore)], kf2);
    assert.deepEqual(
      [topics.present, topics.missing, topics.wrong],
      [ackedBefore, [], []],
      'every topic made before the backup began, with its partitions and retention.ms',
    );
    assert.deepEqual(await kafkaClient('orders', ['offsets', 'get'], kf2), committed, "the group's committed offsets");
    assert.deepEqual(committed, { offsets: [0, 1, 2].map((p) => ({ partition: p, offset: String((p + 1) * 10) })) });
    await ok(['service', 'delete', 'kf2']);
    const drill = JSON.parse(await ok(['backup', 'verify', id, '--json', '--timeout', '600'])) as { status: string; summary: string };
    assert.equal(drill.status, 'ok', JSON.stringify(drill));
    const counted = /^(\d+) topics, \d+ partitions, (\d+) consumer groups$/.exec(drill.summary);
    assert.ok(counted && Number(counted[1]) >= ackedBefore + 1 && Number(counted[2]) >= 1, `the drill counted ${drill.summary}`);
    // The topics made for this go: the scale below moves every partition there is.
    assert.ok(((await kafkaClient('made', ['topics-delete'])) as { deleted: number }).deleted >= ackedBefore);
  });

  it('upgrades one broker at a time while a client produces with acks=all, losing nothing acknowledged', async (t) => {
    for (const i of live()) docker(bed.nodes[i].docker!, ['tag', KAFKA_IMAGE, NEXT_IMAGE]);
    await pollUntil(service, (v) => running(v, 3), { ms: 60_000, what: 'three brokers', context });
    const load = startLoad(bed, [...clientArgs('orders-2'), 'load'], context);
    assert.deepEqual(await kafkaClient('orders-2', ['topic', '3']), { created: true });
    try {
      await load.ready();
      const started = Date.now();
      const up = await cli(['service', 'upgrade', 'kf', '--image', NEXT_IMAGE, '--timeout', '600', '--addr', bed.nodes[live()[0]].addr]);
      assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
      t.diagnostic(`rolling upgrade of 3 brokers: ${Date.now() - started} ms`);
    } finally {
      await load.stop();
    }
    const stats = load.result();
    t.diagnostic(`during the upgrade: ${stats.acked[1] * 100} messages acknowledged, ${stats.errors} errors, longest produce gap ${stats.longestGapMs} ms`);
    const after = await service();
    assert.ok(
      after.members.every((m) => m.image === NEXT_IMAGE),
      JSON.stringify(after.members),
    );
    orders2Acked = stats.acked[1];
    await allThere('orders-2', orders2Acked);
    await allThere('orders', ordersAcked);
  });

  it('scales 3 → 4 with --rebalance (replicas move onto the new broker until all hold a fair share) and back to 3 (its partitions move away first)', async (t) => {
    const addr = () => bed.nodes[live()[0]].addr;
    const started = Date.now();
    const up = await cli(['service', 'scale', 'kf', '4', '--rebalance', '--addr', addr()]);
    assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
    t.diagnostic(`scale 3 → 4 with --rebalance: ${Date.now() - started} ms`);
    const s = await pollUntil(service, (v) => running(v, 4) && v.members.find((m) => m.name === 'kf-3')?.role === 'broker', {
      ms: 60_000,
      what: 'kf-3 a broker',
      context,
    });
    assert.equal(s.members.filter((m) => m.role?.includes('controller')).length, 3);
    // Once the scale returned, the rebalance is done: every broker holds a fair share of all replicas, internal topics too.
    const perBroker = new Map<number, number>();
    for (const r of replicas(s.members[0])) for (const b of r) perBroker.set(b, (perBroker.get(b) ?? 0) + 1);
    const counts = [0, 1, 2, 3].map((b) => perBroker.get(b) ?? 0);
    t.diagnostic(`replicas per broker after the rebalance: ${counts.join(', ')}`);
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `balanced: ${counts.join(', ')}`);
    for (const topic of ['orders', 'orders-2'])
      assert.ok(
        replicas(s.members[0], topic).filter((r) => r.includes(3)).length >= 2,
        `each topic spread evenly: kf-3 holds at least 2 of the 9 replicas of ${topic}, made before it came`,
      );
    await allThere('orders', ordersAcked);
    const down = await cli(['service', 'scale', 'kf', '3', '--addr', addr()]);
    assert.equal(down.code, 0, `${down.stderr}\n${context()}`);
    const after = await pollUntil(service, (v) => running(v, 3), { ms: 60_000, what: 'three brokers', context });
    assert.deepEqual(
      replicas(after.members[0]).filter((r) => r.includes(3)),
      [],
      'no replica left on kf-3',
    );
    await allThere('orders', ordersAcked);
    await allThere('orders-2', orders2Acked);
  });

  it('runs Kafka Connect workers against it: a FileStream sink connector, put through the CLI, writes every message of a topic to a file', async (t) => {
    const connectContext = () => `${context()}\n${serviceContext(bed, 'kc', live())}`;
    const addr = bed.nodes[live()[0]].addr;
    const createConnect = (kafka: string) =>
      cli(['service', 'create', '--type', 'kafka-connect', '--name', 'kc', '--kafka', kafka, '--replicas', '2', '--heap-mib', '256', '--addr', addr]);
    const missing = await createConnect('nope');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /needs the kafka service nope, and there is none/);
    const startedAt = Date.now();
    const created = await createConnect('kf');
    assert.equal(created.code, 0, `${created.stderr}\n${connectContext()}`);
    t.diagnostic(`kafka-connect create → ACTIVE (2 workers): ${Date.now() - startedAt} ms`);
    const kf = await service();
    assert.deepEqual((kf as unknown as { needed_by: string[] }).needed_by, ['kc'], 'service get kf names the service that needs it');
    const kcText = await cli(['service', 'get', 'kc', '--addr', addr]);
    assert.match(kcText.stdout, /^needs: kafka kf$/m);
    const refused = await cli(['service', 'delete', 'kf', '--addr', addr]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /kf is needed by kc: delete it first/);

    assert.deepEqual(await kafkaClient('sink-in', ['topic', '3']), { created: true });
    assert.deepEqual((await kafkaClient('sink-in', ['produce', '20'])).acked, [1, 20]);
    const file = path.join(tempDir(), 'sink.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        'connector.class': 'org.apache.kafka.connect.file.FileStreamSinkConnector',
        'tasks.max': 1,
        topics: 'sink-in',
        file: '/data/sink.txt',
        'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
        'value.converter': 'org.apache.kafka.connect.storage.StringConverter',
      }),
    );
    const put = await cli(['service', 'connector', 'put', 'kc', 'sink', '--config', file, '--json', '--addr', addr]);
    assert.equal(put.code, 0, `${put.stderr}\n${connectContext()}`);
    assert.equal((JSON.parse(put.stdout) as { created: boolean }).created, true);
    interface Status {
      status: { connector: { state: string }; tasks: { id: number; state: string; worker_id: string }[] } | null;
    }
    const status = async () => {
      const r = await cli(['service', 'connector', 'get', 'kc', 'sink', '--json', '--addr', addr]);
      if (r.code !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout) as Status;
    };
    const running = await pollUntil(status, (v) => v.status?.connector.state === 'RUNNING' && v.status.tasks[0]?.state === 'RUNNING', {
      ms: 60_000,
      what: 'the sink connector and its task RUNNING',
      context: connectContext,
    });
    // The worker that runs the task, by its advertised name kc-N.kc.fc.test:8083.
    const worker = running.status!.tasks[0].worker_id.split('.')[0];
    const kc = (await cli(['service', 'get', 'kc', '--json', '--addr', addr])).stdout;
    const member = (JSON.parse(kc) as ServiceView).members.find((m) => m.name === worker)!;
    assert.ok(member, `the task's worker ${worker} is a member of kc: ${kc}`);
    const lines = () => {
      try {
        return docker(dockerOf(bed, ids, member), ['exec', `firecampd-kc-${worker}`, 'cat', '/data/sink.txt'])
          .split('\n')
          .filter(Boolean);
      } catch {
        return [];
      }
    };
    const written = await pollUntil(lines, (l) => l.length >= 2000, { ms: 60_000, what: 'the 2,000 messages in the sink file', context: connectContext });
    const want = Array.from({ length: 20 }, (_, b) => Array.from({ length: 100 }, (__, k) => `${b + 1}:${k}`)).flat();
    assert.deepEqual(new Set(written), new Set(want), 'every message of sink-in, and nothing else, in the file');

    // Its metrics: each worker's JMX exporter, found through the nodes' discovery, counts the sink connector.
    const prom = await startBedPrometheus(bed, await serviceCaFile(cli, 'kc', addr));
    try {
      await pollUntil(
        () => prom.query('kafka_connect_worker_connector_count{service="kc", type="kafka-connect"}'),
        (r) => r.length > 0 && r.reduce((sum, x) => sum + x.value, 0) === 1,
        { ms: 60_000, what: "the workers' count of connectors: the sink, once", context: () => prom.log() },
      );
    } finally {
      await prom.stop();
    }

    // Its connectors backed up, and restored as kc2: the sink's config put back, and running there.
    const made = await cli(['backup', 'create', 'kc', '--wait', '--json', '--addr', addr]);
    assert.equal(made.code, 0, made.stderr);
    const backup = JSON.parse(made.stdout) as { id: string; status: string; parts: { name: string }[] };
    assert.deepEqual([backup.status, backup.parts.map((p) => p.name)], ['complete', ['connectors']]);
    const restored = await cli(['backup', 'restore', backup.id, '--as', 'kc2', '--timeout', '300', '--addr', addr]);
    assert.equal(restored.code, 0, `${restored.stderr}\n${serviceContext(bed, 'kc2', live())}`);
    const copy = await cli(['service', 'connector', 'get', 'kc2', 'sink', '--json', '--addr', addr]);
    assert.equal(copy.code, 0, copy.stderr);
    const original = await cli(['service', 'connector', 'get', 'kc', 'sink', '--json', '--addr', addr]);
    const config = (r: { stdout: string }) => {
      const { name: _, ...c } = (JSON.parse(r.stdout) as { config: Record<string, string> }).config;
      return c;
    };
    assert.deepEqual(config(copy), config(original), "kc2's sink has kc's config");
    assert.equal((await cli(['service', 'delete', 'kc2', '--addr', addr])).code, 0);

    const del = await cli(['service', 'connector', 'delete', 'kc', 'sink', '--addr', addr]);
    assert.equal(del.code, 0, del.stderr);
    const gone = await cli(['service', 'connector', 'get', 'kc', 'sink', '--addr', addr]);
    assert.notEqual(gone.code, 0);
    assert.match(gone.stderr, /not found/i);
    const deleted = await cli(['service', 'delete', 'kc', '--addr', addr]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(((await service()) as unknown as { needed_by: string[] }).needed_by, [], 'once kc is gone, nothing needs kf');
  });
});
