// npm run bench:failover -- [--type redis|postgres|kafka|cassandra|elasticsearch] [--runs 4] [--lease-ttl S (the daemon's default)] [--json]
// On the network-namespace test bed (3 nodes, a dockerd each, a client
// namespace): create a Redis cluster (3 shards × a master and a replica),
// time create→ACTIVE; write keys to one master (with the service's generated
// password, as every member requires it), kill the node as a machine dies
// (every process of its namespace killed, its link down: test/bed's die()), time until every member of that node answers again on
// its address, elsewhere, in a healthy cluster, with the keys readable.
// Runs take turns killing a follower node and the leader node. Medians of
// the runs, and of each kind.
//
// --type postgres: create a PostgreSQL service of 3 members (a primary and two
// streaming standbys), time create→ACTIVE; with the load client of
// test/helpers/pg-client.ts inserting through primary.pg.<domain> from the
// client namespace, kill the primary's node the same way and time until the client's first acknowledged insert after the kill. The
// primary goes where placement puts its first member; to make that the leader
// node or a follower node as the run asks, the bench first pins a one-member
// Redis service (a spacer) on each of the two other nodes (node labels and
// --require-label), so the wanted node is the least loaded, then deletes the
// spacers once PostgreSQL is ACTIVE, before the load starts.
//
// --type kafka: create a Kafka service of 3 members (brokers and the KRaft
// controller quorum, one a node: the bed loads the Kafka image), time
// create→ACTIVE; make topic bench (3 partitions, replication factor 3) and,
// with the load client of test/helpers/kafka-client.ts producing to it
// (acks=all) from the client namespace, kill the leader node or a follower
// node (the one that leads partition 0 of bench if a follower does, else one
// that leads a partition) the same way, and time until the client's first
// produce acknowledged after the outage the death causes (every partition
// has a replica there: acks=all waits until the controller fences it). Each
// run's row names the members the dead node ran and the partitions of bench
// it led.
//
// --type cassandra: create a Cassandra ring of 3 (one member a node: the bed
// loads the Cassandra image), time create→ACTIVE; make a table of 3 replicas
// with rows in it, kill the leader node or a follower node the same way, and
// time until the member that node ran serves again on its address, elsewhere:
// a CQL login as the service's superuser and a read of the table at ONE from
// that member alone (test/helpers/cql-client.ts in the client namespace).
// Clients of the other members never stop meanwhile (QUORUM needs 2 of 3):
// this times the return of the lost copy.
//
// --type elasticsearch: create an Elasticsearch (OpenSearch) service of 3
// members, one a node (the bed loads the OpenSearch image), time
// create→ACTIVE; kill the leader node or a follower node the same way, and
// time until the member that ran there runs on another node and answers at
// its address as part of the cluster, with health not red (what the catalog
// counts as serving).
import { execFile, spawn } from 'node:child_process';
import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_LEASE_TTL } from '../src/config.ts';
import { cassandra as cassandraType } from '../src/catalog/services/cassandra/cassandra.ts';
import { elasticsearch as elasticsearchType } from '../src/catalog/services/elasticsearch/elasticsearch.ts';
import { kafka as kafkaType } from '../src/catalog/services/kafka/kafka.ts';
import { TestBed } from '../test/bed/bed.ts';
import { REPO, tempDir } from '../test/helpers/proc.ts';
const CASSANDRA_IMAGE = cassandraType.image;
const ELASTICSEARCH_IMAGE = elasticsearchType.image;
const KAFKA_IMAGE = kafkaType.image;

const execFileAsync = promisify(execFile);
const KEYS = 1000;
// Issue #16's, for the Redis cluster at the daemon's defaults: create → ACTIVE, and kill → serving when a follower's
// node dies and when the leader's does (its death costs an election first).
const TARGETS = { create_ms: 5_000, failover_ms: 5_000 };
const TARGETS_BY_VICTIM = { follower: 5_000, leader: 7_000 };
const TYPES = ['redis', 'postgres', 'kafka', 'cassandra', 'elasticsearch'] as const;
const PG_CLIENT = path.join(REPO, 'test', 'helpers', 'pg-client.ts');

/** `firecampd service ca NAME` into a file: what the clients check the members' certificates against (TLS is on by default). */
async function serviceCaFile(bed: TestBed, name: string): Promise<string> {
  const r = await bed.api(0, 'GET', `/v1/service/ca?name=${name}`);
  if (r.status !== 200) throw new Error(`service ca ${name}: ${r.status} ${JSON.stringify(r.json)}`);
  const file = path.join(tempDir(), `${name}-ca.crt`);
  fs.writeFileSync(file, (r.json as { ca: string }).ca);
  return file;
}
const KAFKA_CLIENT = path.join(REPO, 'test', 'helpers', 'kafka-client.ts');
const CQL_CLIENT = path.join(REPO, 'test', 'helpers', 'cql-client.ts');
/** Every broker, by the name it advertises (a member keeps its name and address when it moves). */
const KAFKA_BROKERS = 'kf-0.kf.fc.test:9092,kf-1.kf.fc.test:9092,kf-2.kf.fc.test:9092';
const KAFKA_TOPIC = 'bench';
/** The node label that pins a spacer to one node (postgres runs). */
const NODE_LABEL = 'bench-node';

interface Run {
  create_ms: number;
  failover_ms: number;
  /** Whether the node that died was also the Raft leader (an election comes first, and the new leader restarts every lease's TTL). */
  victim_was_leader: boolean;
  /** kafka, elasticsearch: the members the dead node ran. */
  victim_members?: string[];
  /** kafka: the partitions of the topic whose leader the dead node ran (as described before the load started). */
  victim_led_partitions?: number[];
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A fresh bed of 3 nodes (a dockerd each) and a client namespace, every agent holding its lease. */
async function startBed(leaseTtl: number, extra: (i: number, bed: TestBed) => string[] = () => [], images?: string[]): Promise<TestBed> {
  const bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true, ...(images ? { images } : {}) });
  try {
    for (let i = 0; i < 3; i++) {
      await bed.start(i, [...bed.serviceNodeArgs(leaseTtl), ...extra(i, bed)]);
    }
    // Every agent holds its lease before the clock starts: placement needs live nodes.
    await until(async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3, 30_000, 'the agents');
    return bed;
  } catch (err) {
    await bed.destroy();
    throw err;
  }
}

async function oneRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  const bed = await startBed(leaseTtl);
  try {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const ids = await bed.nodeIds();

    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'redis', name: 'cache', redis: { shards: 3, replicasPerShard: 1 }, volumeSizeMiB: 64 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    const service = async (i: number) => (await bed.api(i, 'GET', '/v1/service?name=cache')).json as { status: string; members: Member[] };
    await until(async () => (await service(0)).status === 'ACTIVE', 60_000, 'ACTIVE');
    const create_ms = Date.now() - t0;

    // Every member requires the service's password: what `firecampd service credentials cache` shows.
    const creds = await bed.api(0, 'GET', '/v1/service/credentials?name=cache');
    const password = (creds.json as { credentials?: { secret: string; value: string }[] }).credentials?.find((c) => c.secret === 'password')?.value;
    if (creds.status !== 200 || !password) throw new Error(`credentials: ${creds.status} ${creds.status === 200 ? 'no password' : JSON.stringify(creds.json)}`);
    // In REDISCLI_AUTH, not on redis-cli's command line. (redis-cli exits 0 on an error reply: callers compare what it printed.)
    const env = { ...process.env, REDISCLI_AUTH: password };
    const tls = ['--tls', '--cacert', await serviceCaFile(bed, 'cache')];
    const redis = async (ip: string, args: string[], input?: string) => {
      const p = execFileAsync('nsenter', [`--net=/var/run/netns/${bed.client!.ns}`, 'redis-cli', ...tls, '-h', ip, ...args], {
        encoding: 'utf8',
        timeout: 1000,
        env,
      });
      if (input !== undefined) p.child.stdin!.end(input);
      return (await p).stdout.trim();
    };
    const members = (await service(0)).members;
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([`${bed.nodes[0].ip}:53`]);
    // Read once: node 0's linearizable read saw the service ACTIVE, and every name was written before its member first ran.
    for (const m of members) if ((await r.resolve4(m.dns))[0] !== m.ip) throw new Error(`DNS does not point ${m.dns} at ${m.ip}`);
    // The keys of one hash slot, written to the master that serves it: the bench kills that master's node.
    // The slot is chosen so that the node is the Raft leader, or is not, as this run asks.
    const leader = (await status(0)).leader as string;
    const clusterNodes = await redis(members[0].ip, ['CLUSTER', 'NODES']);
    let tag = '';
    let owner = '';
    for (let k = 0; k < 64; k++) {
      tag = `{bench${k}}`;
      owner = ownerOf(clusterNodes, Number(await redis(members[0].ip, ['CLUSTER', 'KEYSLOT', tag])));
      if ((members.find((m) => m.ip === owner)!.node === leader) === (victimRole === 'leader')) break;
    }
    const piped = await redis(owner, ['--pipe'], Array.from({ length: KEYS }, (_, i) => `SET ${tag}k${i} v${i}\n`).join(''));
    if (!piped.endsWith(`errors: 0, replies: ${KEYS}`)) throw new Error(`redis-cli --pipe to ${owner}: ${piped}`);
    // On disk before the crash, not after a pause: with appendfsync always, the next write fsyncs the whole AOF, earlier writes too.
    // (The SET rewrites a key just written, with the same value.)
    const policy = (await redis(owner, ['CONFIG', 'GET', 'appendfsync'])).split('\n')[1];
    for (const args of [
      ['CONFIG', 'SET', 'appendfsync', 'always'],
      ['SET', `${tag}k0`, 'v0'],
      ['CONFIG', 'SET', 'appendfsync', policy],
    ]) {
      const said = await redis(owner, args);
      if (said !== 'OK') throw new Error(`redis-cli ${args.join(' ')}: ${said}`);
    }

    const victimMember = members.find((m) => m.ip === owner)!;
    const victim = ids.indexOf(victimMember.node);
    const moving = members.filter((m) => m.node === victimMember.node);
    const victim_was_leader = leader === victimMember.node;
    const t1 = Date.now();
    bed.die(victim);
    // Serving again: every member of the killed node runs elsewhere, answers at its address in a healthy cluster, and the keys are all there.
    await until(
      async () => {
        const now = (await service((victim + 1) % 3)).members;
        for (const was of moving) {
          const m = now.find((x) => x.name === was.name)!;
          if (m.node === was.node || m.state !== 'running') return false;
          if (!(await redis(m.ip, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false;
        }
        return (await redis(owner, ['-c', 'DBSIZE'])) !== '' && (await redis(owner, ['-c', 'GET', `${tag}k${KEYS - 1}`])) === `v${KEYS - 1}`;
      },
      120_000,
      'the moved members serving with their keys',
    );
    const failover_ms = Date.now() - t1;
    return { create_ms, failover_ms, victim_was_leader };
  } finally {
    await bed.destroy();
  }
}

/**
 * PostgreSQL: a 3-member service, create→ACTIVE; then, with the load client
 * inserting, the primary's node dies, and failover_ms is the time from the
 * kill to the client's first acknowledged insert after it.
 */
async function postgresRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  // Each node carries a label naming it, for the spacers' --require-label.
  const bed = await startBed(leaseTtl, (i, b) => ['--labels', `${NODE_LABEL}=${b.nodes[i].ns}`]);
  let load: LoadClient | undefined;
  try {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const service = async (name: string, i = 0) => (await bed.api(i, 'GET', `/v1/service?name=${name}`)).json as PgView;
    const ids = await bed.nodeIds();

    // Where the primary should run: the leader node, or a follower node. A spacer on each other node makes it the least loaded one,
    // so that placement puts the first member (the primary) there; the other two members go to the nodes without a member of theirs.
    const leader = (await status(0)).leader as string;
    const wanted = victimRole === 'leader' ? leader : ids.find((id) => id !== leader)!;
    const spacers = ids.flatMap((id, i) => (id === wanted ? [] : [{ name: `spacer-${bed.nodes[i].ns}`, ns: bed.nodes[i].ns }]));
    for (const sp of spacers) {
      const r = await bed.api(0, 'POST', '/v1/services', {
        type: 'redis',
        name: sp.name,
        replicas: 1,
        volumeSizeMiB: 64,
        placement: { labels: { [NODE_LABEL]: sp.ns } },
      });
      if (r.status !== 200) throw new Error(`create ${sp.name}: ${JSON.stringify(r.json)}`);
    }
    for (const sp of spacers) await until(async () => (await service(sp.name)).status === 'ACTIVE', 60_000, `${sp.name} ACTIVE`);

    // What `firecampd service create --type postgres --name pg --replicas 3 --volume-size 256` sends.
    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'postgres', name: 'pg', replicas: 3, volumeSizeMiB: 256 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    await until(async () => (await service('pg')).status === 'ACTIVE', 120_000, 'pg ACTIVE');
    const create_ms = Date.now() - t0;

    // The spacers go before the load starts: the dead node then runs nothing but its PostgreSQL member.
    for (const sp of spacers) {
      const r = await bed.api(0, 'POST', '/v1/services/delete', { name: sp.name });
      if (r.status !== 200) throw new Error(`delete ${sp.name}: ${JSON.stringify(r.json)}`);
    }
    for (const sp of spacers) await until(async () => (await bed.api(0, 'GET', `/v1/service?name=${sp.name}`)).status === 404, 60_000, `${sp.name} deleted`);

    // The superuser's password: what `firecampd service credentials pg` shows for user postgres.
    const creds = await bed.api(0, 'GET', '/v1/service/credentials?name=pg');
    const password = (creds.json as { credentials?: { user?: string; value: string }[] }).credentials?.find((c) => c.user === 'postgres')?.value;
    if (creds.status !== 200 || !password)
      throw new Error(`credentials: ${creds.status} ${creds.status === 200 ? 'no password of user postgres' : JSON.stringify(creds.json)}`);

    const caFile = await serviceCaFile(bed, 'pg');

    const view = await service('pg');
    const primary = view.members.find((m) => m.name === view.state?.primary);
    if (!primary) throw new Error(`no primary member in the service view: state ${JSON.stringify(view.state)}`);
    const victim = ids.indexOf(primary.node);
    if (victim < 0) throw new Error(`the primary ${primary.name} is on ${primary.node}, not a node of the bed`);
    if (primary.node !== wanted)
      process.stderr.write(`bench:failover: the primary ${primary.name} was placed on ${bed.nodes[victim].ns}, not on the ${victimRole} node asked for\n`);
    // The client asks a node that stays alive for the primary's address.
    const survivor = [0, 1, 2].find((i) => i !== victim)!;
    load = startLoad(
      bed,
      [
        PG_CLIENT,
        '--dns',
        `${bed.nodes[survivor].ip}:53`,
        '--host',
        'primary.pg.fc.test',
        '--user',
        'postgres',
        '--password',
        password,
        '--ca',
        caFile,
        'load',
      ],
      'insert',
    );
    await load.ready(60_000);

    const victim_was_leader = (await status(survivor)).leader === primary.node;
    const t1 = Date.now();
    bed.die(victim);
    // Serving again: the first insert acknowledged after the kill, following an outage (the client reports one of over a second).
    const resumedAt = await load.resumedAfter(t1, 120_000);
    return { create_ms, failover_ms: resumedAt - t1, victim_was_leader };
  } finally {
    await load?.stop();
    await bed.destroy();
  }
}

/**
 * Kafka: a 3-member service (a broker and a KRaft controller on each node), create→ACTIVE; then, with the load
 * client producing to topic bench, the leader node or a follower node dies, and failover_ms is the time from the
 * kill to the client's first produce acknowledged after it (after the outage, once its broker is fenced).
 */
async function kafkaRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  const bed = await startBed(leaseTtl, undefined, [KAFKA_IMAGE]);
  let load: LoadClient | undefined;
  try {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const service = async (i = 0) => (await bed.api(i, 'GET', '/v1/service?name=kf')).json as { status: string; members: Member[] };
    const ids = await bed.nodeIds();

    // What `firecampd service create --type kafka --name kf --replicas 3 --volume-size 512 --heap-mib 256` sends.
    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'kafka', name: 'kf', replicas: 3, volumeSizeMiB: 512, heapMiB: 256 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    await until(async () => (await service()).status === 'ACTIVE', 180_000, 'kf ACTIVE');
    const create_ms = Date.now() - t0;

    // The SASL/SCRAM password of clients: what `firecampd service credentials kf` shows for user admin.
    const creds = await bed.api(0, 'GET', '/v1/service/credentials?name=kf');
    const password = (creds.json as { credentials?: { user?: string; value: string }[] }).credentials?.find((c) => c.user === 'admin')?.value;
    if (creds.status !== 200 || !password)
      throw new Error(`credentials: ${creds.status} ${creds.status === 200 ? 'no password of user admin' : JSON.stringify(creds.json)}`);
    /** test/helpers/kafka-client.ts with its flags, asking these nodes' DNS servers for the brokers' addresses. */
    const client = (dnsNodes: number[]) => [
      KAFKA_CLIENT,
      '--dns',
      dnsNodes.map((i) => `${bed.nodes[i].ip}:53`).join(','),
      '--brokers',
      KAFKA_BROKERS,
      '--password',
      password,
      '--topic',
      KAFKA_TOPIC,
    ];
    /** One run of the client in the client namespace: the JSON of its last line. */
    const kafkaClient = async (dnsNodes: number[], args: string[], timeout: number) => {
      const cmd = [`--net=/var/run/netns/${bed.client!.ns}`, process.execPath, '--import', 'tsx', ...client(dnsNodes), ...args];
      const { stdout } = await execFileAsync('nsenter', cmd, { cwd: REPO, encoding: 'utf8', timeout });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    };

    // The topic, replicated on all three brokers ({"created": false} would be a retry's, after an attempt that made it).
    await until(async () => typeof (await kafkaClient([0, 1, 2], ['topic', '3'], 60_000)).created === 'boolean', 120_000, `topic ${KAFKA_TOPIC}`);
    const view = await service();
    // The leader of each partition (a broker id, N of member kf-N), as kafka-topics.sh in a member describes it.
    const m0 = view.members[0];
    let leaders: { partition: number; leader: number }[] = [];
    await until(
      async () => {
        const { stdout } = await execFileAsync(
          'docker',
          [
            '-H',
            bed.nodes[ids.indexOf(m0.node)].docker!.host,
            'exec',
            `firecampd-kf-${m0.name}`,
            '/opt/kafka/bin/kafka-topics.sh',
            '--bootstrap-server',
            `${m0.name}.kf.fc.test:9092`,
            '--command-config',
            '/data/firecampd/client.properties',
            '--describe',
            '--topic',
            KAFKA_TOPIC,
          ],
          { encoding: 'utf8', timeout: 60_000 },
        );
        leaders = [...stdout.matchAll(/Partition: (\d+)\s+Leader: (-?\d+)/g)].map((x) => ({ partition: Number(x[1]), leader: Number(x[2]) }));
        return leaders.length === 3 && leaders.every((p) => p.leader >= 0);
      },
      120_000,
      `a leader for every partition of ${KAFKA_TOPIC}`,
    );
    const ledBy = (id: string) => leaders.filter((p) => view.members.find((m) => m.name === `kf-${p.leader}`)?.node === id).map((p) => p.partition);

    // The node to kill: the Raft leader's, or a follower's; of the two followers, the one that leads partition 0 if one
    // does, else one that leads a partition. (Every broker has a replica of every partition: its death holds up every
    // acks=all produce until the controller fences it, whichever partitions it led.)
    const leader = (await status(0)).leader as string;
    const followers = ids.filter((id) => id !== leader);
    const wanted =
      victimRole === 'leader' ? leader : (followers.find((id) => ledBy(id).includes(0)) ?? followers.find((id) => ledBy(id).length > 0) ?? followers[0]);
    const victim = ids.indexOf(wanted);
    if (victim < 0) throw new Error(`the Raft leader ${leader} is not a node of the bed`);
    const victimMembers = view.members.filter((m) => m.node === wanted);
    const victim_led_partitions = ledBy(wanted);
    const survivors = [0, 1, 2].filter((i) => i !== victim);
    // The client asks the nodes that stay alive for the brokers' addresses.
    load = startLoad(bed, [...client(survivors), 'load'], 'produce', 45_000);
    await load.ready(60_000);

    const victim_was_leader = (await status(survivors[0])).leader === wanted;
    const t1 = Date.now();
    bed.die(victim);
    // Serving again: the first produce acknowledged after the kill, following the outage it causes (every partition has a
    // replica on the dead broker, so acks=all waits until the controller fences it; the client reports outages of over a second).
    let resumedAt: number | undefined;
    await until(
      () => {
        resumedAt = load!.resumedSince(t1);
        return Promise.resolve(resumedAt !== undefined || load!.exited() !== undefined);
      },
      180_000,
      `a produce acknowledged after the death of ${victimMembers.map((m) => m.name).join(', ')}'s node`,
    );
    const gone = load.exited();
    if (gone) throw gone;
    return { create_ms, victim_was_leader, victim_members: victimMembers.map((m) => m.name), victim_led_partitions, failover_ms: resumedAt! - t1 };
  } finally {
    await load?.stop();
    await bed.destroy();
  }
}

async function cassandraRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  const bed = await startBed(leaseTtl, undefined, [CASSANDRA_IMAGE]);
  try {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const service = async (i = 0) => (await bed.api(i, 'GET', '/v1/service?name=cs')).json as { status: string; members: Member[] };
    const ids = await bed.nodeIds();

    // What `firecampd service create --type cassandra --name cs --replicas 3 --volume-size 512 --heap-mib 384` sends.
    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'cassandra', name: 'cs', replicas: 3, volumeSizeMiB: 512, heapMiB: 384 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    await until(async () => (await service()).status === 'ACTIVE', 600_000, 'cs ACTIVE');
    const create_ms = Date.now() - t0;

    const creds = await bed.api(0, 'GET', '/v1/service/credentials?name=cs');
    const password = (creds.json as { credentials?: { user?: string; value: string }[] }).credentials?.find((c) => c.user === 'admin')?.value;
    if (creds.status !== 200 || !password)
      throw new Error(`credentials: ${creds.status} ${creds.status === 200 ? 'no password of user admin' : JSON.stringify(creds.json)}`);
    /** One run of the CQL client in the client namespace, asking these nodes' DNS servers: the JSON of its last line. */
    const cql = async (dnsNodes: number[], args: string[]) => {
      const cmd = [
        `--net=/var/run/netns/${bed.client!.ns}`,
        process.execPath,
        '--import',
        'tsx',
        CQL_CLIENT,
        '--dns',
        dnsNodes.map((i) => `${bed.nodes[i].ip}:53`).join(','),
        '--hosts',
        'cs-0.cs.fc.test,cs-1.cs.fc.test,cs-2.cs.fc.test',
        '--password',
        password,
        '--table',
        'bench',
        ...args,
      ];
      const { stdout } = await execFileAsync('nsenter', cmd, { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    };
    await cql([0, 1, 2], ['setup']);
    await cql([0, 1, 2], ['insert', String(KEYS)]);

    // Every node runs one member: the node to kill is the Raft leader's or a follower's.
    const leader = (await status(0)).leader as string;
    const wanted = victimRole === 'leader' ? leader : ids.find((id) => id !== leader)!;
    const victim = ids.indexOf(wanted);
    if (victim < 0) throw new Error(`the Raft leader ${leader} is not a node of the bed`);
    const lost = (await service()).members.find((m) => m.node === wanted)!;
    const survivors = [0, 1, 2].filter((i) => i !== victim);
    const victim_was_leader = (await status(survivors[0])).leader === wanted;
    const t1 = Date.now();
    bed.die(victim);
    // Serving again: a login and every row read at ONE from the lost member alone, at its address.
    await until(
      async () => (await cql(survivors, ['check', String(KEYS), '--only', lost.ip, '--consistency', 'one'])).missingCount === 0,
      600_000,
      `${lost.name} serving again at ${lost.ip}`,
    );
    return { create_ms, victim_was_leader, victim_members: [lost.name], failover_ms: Date.now() - t1 };
  } finally {
    await bed.destroy();
  }
}

/**
 * Whether the member answers at `ip` as part of the cluster and health is not red, asked from the client namespace
 * (a short Node script: the bed's namespaces need no curl).
 */
async function searchMemberServes(bed: TestBed, ip: string, name: string): Promise<boolean> {
  const script = `const get = (p) => fetch('http://${ip}:9200' + p, { signal: AbortSignal.timeout(2000) }).then((r) => r.json());
Promise.all([get('/_cluster/state/nodes?filter_path=nodes.*.name'), get('/_cluster/health')]).then(([s, h]) =>
  console.log(JSON.stringify({ joined: Object.values(s.nodes ?? {}).some((n) => n.name === ${JSON.stringify(name)}), status: h.status })));`;
  const { stdout } = await execFileAsync('nsenter', [`--net=/var/run/netns/${bed.client!.ns}`, process.execPath, '-e', script], {
    encoding: 'utf8',
    timeout: 5000,
  });
  const r = JSON.parse(stdout) as { joined: boolean; status?: string };
  return r.joined && (r.status === 'green' || r.status === 'yellow');
}

async function elasticsearchRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  const bed = await startBed(leaseTtl, () => [], [ELASTICSEARCH_IMAGE]);
  try {
    const service = async (i: number) => (await bed.api(i, 'GET', '/v1/service?name=es')).json as { status: string; members: Member[] };
    const ids = await bed.nodeIds();
    // What `firecampd service create --type elasticsearch --name es --replicas 3 --heap-mib 384 --volume-size 256` sends.
    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'elasticsearch', name: 'es', replicas: 3, heapMiB: 384, volumeSizeMiB: 256 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    await until(async () => (await service(0)).status === 'ACTIVE', 300_000, 'es ACTIVE');
    const create_ms = Date.now() - t0;

    const leader = (await bed.api(0, 'GET', '/v1/cluster/status')).json.leader as string;
    const members = (await service(0)).members;
    const lost = members.find((m) => (m.node === leader) === (victimRole === 'leader'));
    if (!lost) throw new Error(`no member on a ${victimRole} node: ${JSON.stringify(members)}`);
    const victim = ids.indexOf(lost.node);
    const t1 = Date.now();
    bed.die(victim);
    await until(
      async () => {
        const m = (await service((victim + 1) % 3)).members.find((x) => x.name === lost.name)!;
        return m.node !== lost.node && m.state === 'running' && (await searchMemberServes(bed, m.ip, m.name));
      },
      300_000,
      `${lost.name} serving again on another node`,
    );
    return { create_ms, failover_ms: Date.now() - t1, victim_was_leader: lost.node === leader, victim_members: [lost.name] };
  } finally {
    await bed.destroy();
  }
}

interface PgView {
  status: string;
  state?: { primary?: string };
  members: Member[];
}

interface LoadClient {
  /** Resolves after the client's first acknowledged write. */
  ready(ms: number): Promise<void>;
  /** The epoch ms of the first write acknowledged after an outage that ended after `since`. */
  resumedAfter(since: number, ms: number): Promise<number>;
  /** The same, if the client printed it yet. */
  resumedSince(since: number): number | undefined;
  /** Why the client is gone, once it exited; undefined while it runs. */
  exited(): Error | undefined;
  /** Stops it; its totals, if it printed them. */
  stop(): Promise<LoadTotals | undefined>;
}

/** What test/helpers/write-loop.ts prints last. */
interface LoadTotals {
  acked: [number, number];
  errors: number;
  longestGapMs: number;
  messages: string[];
}

/**
 * A load client (test/helpers/*-client.ts: its script, flags and `load`) in the client namespace, writing until
 * stopped; `verb` names its writes in messages (insert, produce). Stopping it waits for its in-flight write, up
 * to stopMs.
 */
function startLoad(bed: TestBed, client: string[], verb: string, stopMs = 20_000): LoadClient {
  const args = [`--net=/var/run/netns/${bed.client!.ns}`, process.execPath, '--import', 'tsx', ...client];
  const proc = spawn('nsenter', args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  proc.stderr.on('data', (d) => (err = (err + String(d)).slice(-2000)));
  proc.stdin.on('error', () => {});
  let exited = false;
  const closed = new Promise<void>((r) => proc.once('close', () => r())).then(() => void (exited = true));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const gone = () => new Error(`the load client exited: ${err.trim() || out.trim().split('\n').at(-1) || 'without a word'}`);
  const resumedSince = (since: number) => lines().find((x) => typeof x.resumedAt === 'number' && x.resumedAt > since)?.resumedAt as number | undefined;
  const a = /^[aeiou]/.test(verb) ? 'an' : 'a';
  return {
    ready: async (ms) => {
      const ready = () => lines().some((l) => l.ready === true);
      await until(() => Promise.resolve(ready() || exited), ms, `the load client to ${verb}`);
      if (!ready()) throw gone();
    },
    resumedAfter: async (since, ms) => {
      let at: number | undefined;
      await until(
        () => {
          at = resumedSince(since);
          return Promise.resolve(at !== undefined || exited);
        },
        ms,
        `${a} ${verb} acknowledged after the kill`,
      );
      if (at === undefined) throw gone();
      return at;
    },
    resumedSince,
    exited: () => (exited ? gone() : undefined),
    // End of stdin stops it, after its in-flight write (pg-client: 2 s to connect, 5 s per query; kafka-client: 10 s a send, tried 3 times).
    stop: async () => {
      proc.stdin.end();
      const timer = setTimeout(() => proc.kill('SIGKILL'), stopMs);
      await closed;
      clearTimeout(timer);
      const totals = lines()
        .filter((l) => Array.isArray(l.acked))
        .at(-1);
      return totals as unknown as LoadTotals | undefined;
    },
  };
}

interface Member {
  name: string;
  node: string;
  ip: string;
  dns: string;
  state: string;
}

/** The address of the master that serves `slot`, from CLUSTER NODES. */
function ownerOf(nodes: string, slot: number): string {
  for (const line of nodes.split('\n')) {
    const f = line.trim().split(' ');
    if (!f[2]?.includes('master')) continue;
    for (const range of f.slice(8)) {
      const [lo, hi] = range.split('-').map(Number);
      if (slot >= lo && slot <= (hi ?? lo)) return f[1].split(':')[0];
    }
  }
  throw new Error(`no master serves slot ${slot}`);
}

/** One run of each --type. */
const RUNS: Record<(typeof TYPES)[number], (leaseTtl: number, victimRole: 'leader' | 'follower') => Promise<Run>> = {
  redis: oneRun,
  postgres: postgresRun,
  kafka: kafkaRun,
  cassandra: cassandraRun,
  elasticsearch: elasticsearchRun,
};

/** The table's first line, by --type. */
const TITLES: Record<(typeof TYPES)[number], string> = {
  redis: 'Redis, 3×2 cluster',
  postgres: 'PostgreSQL, 3 members (failover: kill → first acknowledged insert)',
  kafka: 'Kafka, 3 brokers (failover: kill → first acknowledged produce)',
  cassandra: 'Cassandra, ring of 3 (failover: kill → the lost member serves its rows again)',
  elasticsearch: 'Elasticsearch (OpenSearch), 3 members (failover: kill → the lost member in the cluster again elsewhere)',
};

/** The median (the mean of the middle two of an even count); undefined for no runs. */
function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('type', {
      choices: TYPES,
      default: 'redis',
      describe:
        "the service: a 3×2 Redis cluster, PostgreSQL's primary and 2 standbys, 3 Kafka brokers (KRaft controllers too), a Cassandra ring of 3, or 3 Elasticsearch (OpenSearch) members",
    })
    .option('runs', { type: 'number', default: 4, describe: 'runs; they take turns killing a follower node and the leader node' })
    .option('lease-ttl', {
      type: 'number',
      default: DEFAULT_LEASE_TTL,
      describe: "the nodes' --lease-ttl (the daemon's default unless given): failover waits for it to expire",
    })
    .option('json', { type: 'boolean', default: false })
    .strict()
    .parseAsync();
  const runs: Run[] = [];
  for (let i = 0; i < argv.runs; i++) {
    const run = RUNS[argv.type as (typeof TYPES)[number]];
    runs.push(await run(argv.leaseTtl, i % 2 === 0 ? 'follower' : 'leader'));
    const r = runs.at(-1)!;
    // Kafka and Elasticsearch: what the dead node ran (and which partitions it led, for Kafka).
    const led = r.victim_led_partitions?.length ? r.victim_led_partitions.map((p) => `${KAFKA_TOPIC}/${p}`).join(', ') : 'no partition';
    const ran = r.victim_members ? ` (it ran ${r.victim_members.join(', ')}${r.victim_led_partitions ? `, leader of ${led}` : ''})` : '';
    if (!argv.json)
      process.stderr.write(
        `run ${i + 1}/${argv.runs}: create ${r.create_ms} ms, failover ${r.failover_ms} ms${r.victim_was_leader ? ' (the dead node was the Raft leader)' : ''}${ran}\n`,
      );
  }
  const result = {
    type: argv.type,
    lease_ttl_s: argv.leaseTtl,
    runs,
    median: { create_ms: median(runs.map((r) => r.create_ms)), failover_ms: median(runs.map((r) => r.failover_ms)) },
    // A dead leader costs an election, and the new leader gives every lease a whole TTL again.
    median_failover_ms_by_victim: {
      follower: median(runs.filter((r) => !r.victim_was_leader).map((r) => r.failover_ms)) ?? null,
      leader: median(runs.filter((r) => r.victim_was_leader).map((r) => r.failover_ms)) ?? null,
    },
    targets: TARGETS,
    targets_by_victim: TARGETS_BY_VICTIM,
  };
  if (argv.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const row = (k: 'create_ms' | 'failover_ms') =>
    `${k.padEnd(12)}${String(result.median[k]).padStart(8)}   ${runs
      .map((r) => r[k])
      .join(', ')
      .padEnd(24)}${String(TARGETS[k]).padStart(8)}`;
  const byVictim = result.median_failover_ms_by_victim;
  process.stdout.write(
    `${TITLES[argv.type as (typeof TYPES)[number]]}, lease TTL ${argv.leaseTtl} s, ${argv.runs} runs\n${'what'.padEnd(12)}${'median'.padStart(8)}   ${'runs'.padEnd(24)}${'target'.padStart(8)}\n${row('create_ms')}\n${row('failover_ms')}\n` +
      `failover median when the dead node was a follower: ${byVictim.follower ?? '-'} ms (target ${TARGETS_BY_VICTIM.follower}), the leader: ${byVictim.leader ?? '-'} ms (target ${TARGETS_BY_VICTIM.leader})\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`bench:failover: ${(err as Error).message}\n`);
  process.exit(1);
});
