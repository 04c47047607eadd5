// The pure parts of the JVM service types: what ZooKeeper, Kafka, Kafka Connect, Cassandra and Elasticsearch refuse,
// and what their members' specs say (roles, listeners, the voters, secrets
// as templates only), without a cluster. The test-bed files run them for real.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cassandra, jmxPort, parseStatus } from '../src/catalog/services/cassandra/cassandra.ts';
import { ourSnapshots } from '../src/catalog/services/cassandra/backup.ts';
import { parseScramUsers } from '../src/catalog/services/kafka/backup.ts';
import { balancePlan, controllersFor, kafka } from '../src/catalog/services/kafka/kafka.ts';
import { kafkaConnect } from '../src/catalog/services/kafka-connect/kafka-connect.ts';
import { readConnectorConfig } from '../src/catalog/services/kafka-connect/cli.ts';
import { fillSecrets, memberSpecSchema } from '../src/agent/members.ts';
import { dockerUlimits } from '../src/agent/docker.ts';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { elasticsearch, startScript, upkeep } from '../src/catalog/services/elasticsearch/elasticsearch.ts';
import { copiesShort, type ShardRow } from '../src/catalog/services/elasticsearch/cluster-api.ts';
import { createLogger } from '../src/log.ts';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './helpers/proc.ts';
import { postgres } from '../src/catalog/services/postgres/postgres.ts';
import { completeSpec } from '../src/catalog/spec.ts';
import { redis } from '../src/catalog/services/redis/redis.ts';
import { zookeeper } from '../src/catalog/services/zookeeper/zookeeper.ts';
import type { MemberContext, PlacedMember, ServiceSpecInput, TypeContext } from '../src/catalog/types.ts';

const ctx = (n: number, state: MemberContext['state'] = {}, staticIps = true): MemberContext => ({
  domain: 'fc.test',
  ips: Array.from({ length: n }, (_, i) => (staticIps ? `10.0.0.${200 + i}` : undefined)),
  state,
  nodeAddrs: ['10.0.0.11', '10.0.0.12', '10.0.0.13'],
  needed: {},
});
const file = (m: { configFiles?: { path: string; content: string }[] }, path: string) => m.configFiles!.find((f) => f.path === path)!.content;

/**
 * A stand-in for an OpenSearch cluster's REST API, just the calls the
 * elasticsearch type makes, answered alike by every member (127.0.0.2 … on
 * port 9200): enough to walk the type through a rollout and a scale in.
 */
class FakeCluster {
  nodes = new Map([
    ['es-0', 'p0'],
    ['es-1', 'p1'],
    ['es-2', 'p2'],
  ]);
  elected = 'es-1';
  health = 'green';
  dataNodes = 3;
  persistent: Record<string, string> = {};
  voting: string[] = [];
  shards: ShardRow[] = [];
  calls: string[] = [];
  private servers: http.Server[] = [];

  async start(hosts: string[]): Promise<void> {
    for (const host of hosts) {
      const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (d: Buffer) => (body += d.toString()));
        req.on('end', () => {
          const answer = this.answer(req.method!, new URL(req.url!, 'http://x'), body);
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
        });
      });
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(9200, host, resolve));
      this.servers.push(server);
    }
  }

  stop(): Promise<unknown> {
    return Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
  }

  private answer(method: string, url: URL, body: string): unknown {
    if (method !== 'GET') this.calls.push(`${method} ${url.pathname}${url.search}`);
    const route = `${method} ${url.pathname}`;
    if (route === 'GET /_cluster/state/nodes')
      return { nodes: Object.fromEntries([...this.nodes].map(([name, ephemeral_id]) => [`id-${name}`, { name, ephemeral_id }])) };
    if (route === 'GET /_cluster/health') return { status: this.health, number_of_data_nodes: this.dataNodes, unassigned_shards: 0, initializing_shards: 0 };
    if (route === 'GET /_cat/shards') return this.shards;
    if (route === 'GET /_cat/cluster_manager') return [{ node: this.elected }];
    if (route === 'GET /_cluster/settings') return { persistent: this.persistent };
    if (route === 'PUT /_cluster/settings') {
      for (const [k, v] of Object.entries((JSON.parse(body) as { persistent: Record<string, string | null> }).persistent)) {
        if (v === null) delete this.persistent[k];
        else this.persistent[k] = v;
      }
      return { acknowledged: true };
    }
    if (route === 'GET /_cluster/state/metadata')
      return this.voting.length > 0
        ? { metadata: { cluster_coordination: { voting_config_exclusions: this.voting.map((node_name) => ({ node_name })) } } }
        : {};
    if (route === 'POST /_cluster/voting_config_exclusions') this.voting.push(...url.searchParams.get('node_names')!.split(','));
    if (route === 'DELETE /_cluster/voting_config_exclusions') this.voting = [];
    return {};
  }
}

describe('JVM service types', () => {
  it('zookeeper: an odd ensemble of up to 7, 3 by default, and --heap-mib for the JVM only', () => {
    assert.equal(zookeeper.normalize({ type: 'zookeeper', name: 'zk' }).replicas, 3);
    assert.throws(() => zookeeper.normalize({ type: 'zookeeper', name: 'zk', replicas: 4 }), /1, 3, 5 or 7 members/);
    assert.equal(zookeeper.cannotScale(zookeeper.normalize({ type: 'zookeeper', name: 'zk' }), 5, {}), undefined);
    assert.match(zookeeper.cannotScale(zookeeper.normalize({ type: 'zookeeper', name: 'zk' }), 2, {})!, /1, 3, 5 or 7/);
    assert.throws(() => completeSpec({ type: 'redis', name: 'r', heapMiB: 256 }), /--heap-mib is for the types that run on a JVM/);
    assert.throws(() => completeSpec({ type: 'postgres', name: 'pg', heapMiB: 256 }), /--heap-mib is for the types that run on a JVM/);
  });

  it('zookeeper: myid N+1, voters by DNS name, a static IP listened on alone, the heap, the superuser as a template', () => {
    const spec = zookeeper.normalize({ type: 'zookeeper', name: 'zk', heapMiB: 128 });
    const members = zookeeper.members(spec, ctx(3));
    assert.deepEqual(
      file(members[1], 'firecampd/zoo.cfg.dynamic').trim().split('\n'),
      [0, 1, 2].map((i) => `server.${i + 1}=zk-${i}.zk.fc.test:2888:3888:participant;10.0.0.${200 + i}:2181`),
    );
    assert.match(file(members[1], 'firecampd/start.sh'), /echo 2 > "\$ZK\/myid"/);
    assert.match(file(members[0], 'firecampd/zoo.cfg'), /^quorumListenOnAllIPs=false$/m);
    assert.match(file(members[0], 'firecampd/zoo.cfg'), /^standaloneEnabled=false$/m);
    assert.equal(members[0].env!.ZK_SERVER_HEAP, '128');
    assert.deepEqual(members[0].secretFiles, [{ path: '.super-password', template: '{{super}}' }]);
    // Without static IPs, on every address of whichever node the member runs on.
    const shared = zookeeper.members(spec, ctx(3, {}, false));
    assert.match(file(shared[0], 'firecampd/zoo.cfg.dynamic'), /^server\.1=zk-0\.zk\.fc\.test:2888:3888:participant;2181$/m);
    assert.match(file(shared[0], 'firecampd/zoo.cfg'), /^quorumListenOnAllIPs=true$/m);
  });

  it('kafka: 1, 3 or 5 controllers among the first members; the rest brokers only', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6, 9].map(controllersFor), [1, 1, 3, 3, 5, 5, 5]);
    const spec = kafka.normalize({ type: 'kafka', name: 'kf', replicas: 4 });
    const state = kafka.initialState!(spec);
    assert.match(String(state.clusterId), /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/, 'a Kafka cluster id (16 bytes, base64url)');
    const members = kafka.members(spec, ctx(4, state));
    const props = members.map((m) => file(m, 'firecampd/server.properties'));
    assert.deepEqual(
      props.map((p) => /^process\.roles=(.*)$/m.exec(p)![1]),
      ['broker,controller', 'broker,controller', 'broker,controller', 'broker'],
    );
    for (const p of props) assert.match(p, /^controller\.quorum\.voters=0@kf-0\.kf\.fc\.test:9093,1@kf-1\.kf\.fc\.test:9093,2@kf-2\.kf\.fc\.test:9093$/m);
    assert.match(props[3], /^listeners=SASL_PLAINTEXT:\/\/10\.0\.0\.203:9092$/m, 'a broker only has no controller listener');
    assert.match(props[0], /^advertised\.listeners=SASL_PLAINTEXT:\/\/kf-0\.kf\.fc\.test:9092$/m);
    assert.match(props[0], /^min\.insync\.replicas=2$/m);
    assert.match(props[0], /^default\.replication\.factor=3$/m);
    assert.match(props[0], /^unclean\.leader\.election\.enable=false$/m);
    assert.match(file(members[0], 'firecampd/start.sh'), new RegExp(`-t ${String(state.clusterId)} `), 'formatted with the kept cluster id');
    // The SASL logins (which hold the password) are secret files, filled by the agent; the config files have none.
    assert.ok(members.every((m) => !m.configFiles!.some((f) => f.content.includes('ScramLoginModule'))));
    assert.ok(members.every((m) => m.secretFiles!.every((f) => f.template.includes('{{admin}}'))));
  });

  it('kafka: names what to change when a spec or a scale cannot work', () => {
    assert.throws(
      () => kafka.normalize({ type: 'kafka', name: 'kf', replicas: 2, settings: { 'min.insync.replicas': '3' } }),
      /min\.insync\.replicas 3 is more than the 2 members/,
    );
    const spec = kafka.normalize({ type: 'kafka', name: 'kf', replicas: 5 });
    assert.match(kafka.cannotScale(spec, 4, kafka.initialState!(spec))!, /the first 5 members are the controller quorum/);
    assert.equal(kafka.cannotScale(spec, 6, kafka.initialState!(spec)), undefined);
    const one = kafka.normalize({ type: 'kafka', name: 'kf', replicas: 1 });
    assert.match(file(kafka.members(one, ctx(1, kafka.initialState!(one)))[0], 'firecampd/server.properties'), /^min\.insync\.replicas=1$/m);
  });

  it("kafka-connect: workers of one group on the Kafka service's brokers, its replication factor, logins as templates only", () => {
    const kf = kafka.normalize({ type: 'kafka', name: 'kf', replicas: 5 });
    const spec = kafkaConnect.normalize({ type: 'kafka-connect', name: 'kc', needs: { kafka: 'kf' }, heapMiB: 256 });
    assert.equal(spec.replicas, 2, 'two workers by default');
    const members = kafkaConnect.members(spec, { ...ctx(2), needed: { kafka: kf } });
    const conf = file(members[1], 'firecampd/worker.properties');
    assert.match(conf, new RegExp(`^bootstrap.servers=${[0, 1, 2, 3, 4].map((i) => `kf-${i}.kf.fc.test:9092`).join(',')}$`, 'm'));
    assert.match(conf, /^group.id=kc$/m);
    for (const t of ['config', 'offset', 'status']) {
      assert.match(conf, new RegExp(`^${t}.storage.topic=kc-${t}s$`, 'm'));
      assert.match(conf, new RegExp(`^${t}.storage.replication.factor=3$`, 'm'));
    }
    assert.match(conf, /^listeners=http:\/\/10.0.0.201:8083$/m);
    assert.match(conf, /^rest.advertised.host.name=kc-1.kc.fc.test$/m);
    assert.match(conf, /^rest.extension.classes=.*BasicAuthSecurityRestExtension$/m);
    assert.equal(members[0].env?.KAFKA_HEAP_OPTS, '-Xmx256m -Xms256m');
    assert.deepEqual(members[0].borrowedSecrets, [{ as: 'kafka', service: 'kf', secret: 'admin' }]);
    const secrets = { admin: 'rest-password', kafka: 'kafka-password' };
    const login = fillSecrets(members[0].secretFiles!.find((f) => f.path === 'firecampd/kafka-login.properties')!.template, secrets);
    for (const prefix of ['', 'producer.', 'consumer.', 'admin.'])
      assert.ok(
        login.includes(
          `${prefix}sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="kafka-password";`,
        ),
      );
    assert.equal(fillSecrets(members[0].secretFiles!.find((f) => f.path === 'firecampd/rest-users.properties')!.template, secrets), 'admin: rest-password\n');
    assert.doesNotMatch(JSON.stringify(members), /password=\\"(?!\{\{kafka\}\})/, 'the Kafka password only as a {{kafka}} template');
    assert.throws(() => kafkaConnect.members(spec, ctx(2)), /the Kafka service kf that kc needs is gone/);
    assert.throws(
      () => completeSpec({ type: 'kafka-connect', name: 'kc', journalVolumeSizeMiB: 64 }),
      /Kafka Connect has no second volume for a log: leave out --journal-volume-size/,
    );
  });

  it('kafka-connect: a connector file is its settings or the shape of POST /connectors, with a connector.class', () => {
    const dir = tempDir();
    const write = (name: string, content: string) => {
      const f = path.join(dir, name);
      fs.writeFileSync(f, content);
      return f;
    };
    const flat = { 'connector.class': 'org.apache.kafka.connect.file.FileStreamSinkConnector', 'tasks.max': 2, topics: 't' };
    assert.deepEqual(readConnectorConfig(write('flat.json', JSON.stringify(flat))), { ...flat, 'tasks.max': '2' });
    assert.deepEqual(readConnectorConfig(write('rest.json', JSON.stringify({ name: 'sink', config: flat }))), { ...flat, 'tasks.max': '2' });
    assert.throws(() => readConnectorConfig(write('bad.json', '{')), /is not JSON/);
    assert.throws(() => readConnectorConfig(write('none.json', '{"topics": "t"}')), /names no connector.class/);
    assert.throws(() => readConnectorConfig(path.join(dir, 'missing.json')), /ENOENT/);
  });

  it("kafka: a rebalance plan spreads each topic's replicas, and all of them, over the brokers, a new one too, and only once", () => {
    // 50 partitions of __consumer_offsets and 3 of orders, each on brokers 0, 1 and 2, leaders in turn; broker 3 is new.
    const before = [
      ...Array.from({ length: 50 }, (_, i) => ({ topic: '__consumer_offsets', partition: i, replicas: [i % 3, (i + 1) % 3, (i + 2) % 3] })),
      ...Array.from({ length: 3 }, (_, i) => ({ topic: 'orders', partition: i, replicas: [i % 3, (i + 1) % 3, (i + 2) % 3] })),
    ];
    const plan = balancePlan(before, [0, 1, 2, 3]);
    const after = before.map((p) => plan.find((x) => x.topic === p.topic && x.partition === p.partition) ?? p);
    const counts = (ps: typeof after) => [0, 1, 2, 3].map((b) => ps.filter((p) => p.replicas.includes(b)).length);
    const spreadOf = (c: number[]) => Math.max(...c) - Math.min(...c);
    assert.ok(spreadOf(counts(after)) <= 1, `all replicas balanced: ${counts(after).join(', ')}`);
    for (const topic of ['__consumer_offsets', 'orders']) {
      const c = counts(after.filter((p) => p.topic === topic));
      assert.ok(spreadOf(c) <= 1, `${topic} balanced: ${c.join(', ')}`);
    }
    assert.equal(new Set(plan.map((p) => `${p.topic}/${p.partition}`)).size, plan.length, 'each moved partition once');
    for (const p of after) assert.equal(new Set(p.replicas).size, 3, `${p.topic}/${p.partition} keeps three distinct replicas`);
    assert.ok(
      after.some((p) => p.replicas[0] === 3),
      'broker 3 is the preferred leader of some',
    );
    assert.deepEqual(balancePlan(after, [0, 1, 2, 3]), [], 'nothing more to move once balanced');
    assert.deepEqual(before[0].replicas, [0, 1, 2], 'the input is left alone');
    // A replica on a broker outside the list (one that is leaving) neither counts nor moves: leave() handles it.
    assert.deepEqual(balancePlan([{ topic: 't', partition: 0, replicas: [0, 9] }], [0, 1]), []);
  });
  it('cassandra: 1 member or 3 and more, static IPs, never fewer than 3 once 3', () => {
    assert.equal(cassandra.normalize({ type: 'cassandra', name: 'cs' }).replicas, 3);
    assert.throws(() => cassandra.normalize({ type: 'cassandra', name: 'cs', replicas: 2 }), /1 member or 3 and more/);
    const spec = cassandra.normalize({ type: 'cassandra', name: 'cs', replicas: 4 });
    assert.equal(cassandra.cannotScale(spec, 5, {}), undefined);
    assert.equal(cassandra.cannotScale(spec, 3, {}), undefined);
    assert.match(cassandra.cannotScale(spec, 1, {})!, /keep at least 3/);
    assert.match(cassandra.cannotScale(spec, 2, {})!, /1 member or 3 and more/);
    assert.match(cassandra.needsStaticIps(spec)!, /--static-ips and --ip-pool/);
  });

  it('kafka: a backup names the SCRAM users kafka-configs.sh lists, with their mechanisms', () => {
    const out = [
      "SCRAM credential configs for user-principal 'admin' are SCRAM-SHA-512=iterations=4096",
      "SCRAM credential configs for user-principal 'billing-app' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096",
      '',
    ].join('\n');
    assert.deepEqual(parseScramUsers(out), [
      { name: 'admin', mechanisms: 'SCRAM-SHA-512=iterations=4096' },
      { name: 'billing-app', mechanisms: 'SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096' },
    ]);
    assert.deepEqual(parseScramUsers(''), []);
  });

  it("cassandra: a backup clears only the snapshots firecampd took (a user's own are left alone)", () => {
    const listing = [
      'Snapshot Details: ',
      'Snapshot name           Keyspace name Column family name True size Size on disk Creation time            Expiration time',
      'firecampd-1796675486136 t             a                  0 bytes   70.3 KiB     2026-12-07T20:31:26.136Z',
      'firecampd-1796675486136 t             b                  0 bytes   12.1 KiB     2026-12-07T20:31:26.136Z',
      'before-upgrade          t             a                  0 bytes   70.3 KiB     2026-12-01T10:00:00.000Z',
      'firecampd-1796675000000 system_auth   roles              0 bytes   5.1 KiB      2026-12-07T20:20:00.000Z',
      '',
      'Total TrueDiskSpaceUsed: 0 bytes',
    ].join('\n');
    assert.deepEqual(ourSnapshots(listing), ['firecampd-1796675486136', 'firecampd-1796675000000']);
    assert.deepEqual(ourSnapshots('There are no snapshots\n'), []);
  });

  it('cassandra: the first 3 members seed, the others wait to bootstrap; each listens on its IP, JMX on a port of its own', () => {
    const spec = cassandra.normalize({ type: 'cassandra', name: 'cs', replicas: 4, heapMiB: 512, journalVolumeSizeMiB: 128 });
    const members = cassandra.members(spec, ctx(4));
    const yaml = file(members[3], 'firecampd/cassandra.yaml');
    assert.match(yaml, /^ {6}- seeds: "10\.0\.0\.200,10\.0\.0\.201,10\.0\.0\.202"$/m);
    assert.match(yaml, /^listen_address: 10\.0\.0\.203$/m);
    assert.match(yaml, /^rpc_address: 10\.0\.0\.203$/m);
    assert.match(yaml, /^authenticator: PasswordAuthenticator$/m);
    assert.match(yaml, /^commitlog_directory: \/var\/lib\/cassandra-commitlog\/commitlog$/m);
    assert.match(file(members[3], 'firecampd/start.sh'), /until \[ -f "\$S\/bootstrap" \]/, 'a member that is not a seed waits for the go');
    assert.doesNotMatch(file(members[2], 'firecampd/start.sh'), /until \[ -f "\$S\/bootstrap" \]/, 'a seed never waits');
    // A member restored from a backup takes its source's tokens and does not bootstrap: its data is on its volume.
    assert.match(file(members[3], 'firecampd/start.sh'), /if \[ ! -f "\$S\/bootstrap" \] && \[ ! -f "\$S\/tokens" \]; then/);
    assert.match(file(members[3], 'firecampd/start.sh'), /initial_token: %s\\nauto_bootstrap: false/);
    assert.equal(members[0].env!.MAX_HEAP_SIZE, '512M');
    const ports = members.map((m) => Number(m.env!.JMX_PORT));
    assert.equal(new Set(ports).size, 4, 'one JMX port per member');
    assert.ok(ports.every((p) => p >= 7200 && p < 8000 && p === jmxPort(members[ports.indexOf(p)].ip!)));
    // Addresses of one /24, or of a pool up to 800 wide, never share a port.
    const wide = Array.from({ length: 800 }, (_, i) => jmxPort(`10.1.${Math.floor(i / 256)}.${i % 256}`));
    assert.equal(new Set(wide).size, 800);
  });

  it("cassandra: reads each node's state from nodetool status", () => {
    const out = [
      'Datacenter: default',
      '===================',
      'Status=Up/Down',
      '|/ State=Normal/Leaving/Joining/Moving',
      '--  Address       Load        Tokens  Owns (effective)  Host ID                               Rack',
      'UN  10.77.0.200   1.2 MiB     16      100.0%            0b0c…                                 default',
      'UJ  10.77.0.203   88 KiB      16      ?                 1a2b…                                 default',
      'DN  10.77.0.201   1.1 MiB     16      100.0%            3c4d…                                 default',
    ].join('\n');
    assert.deepEqual(
      [...parseStatus(out)],
      [
        ['10.77.0.200', 'UN'],
        ['10.77.0.203', 'UJ'],
        ['10.77.0.201', 'DN'],
      ],
    );
  });
  it('elasticsearch: names what to change when a spec cannot work, and other types refuse its option', () => {
    const es = (x: Partial<ServiceSpecInput> = {}) => elasticsearch.normalize({ type: 'elasticsearch', name: 'es', ...x });
    assert.equal(es().replicas, 3);
    assert.throws(() => es({ elasticsearch: { dedicatedMasters: 2 } }), /--dedicated-masters is 0 or 3/);
    assert.throws(() => es({ elasticsearch: { dedicatedMasters: 3 } }), /--replicas must be at least 4/);
    assert.equal(es({ replicas: 5, elasticsearch: { dedicatedMasters: 3 } }).replicas, 5);
    const complete = (x: Partial<ServiceSpecInput>) => completeSpec({ type: 'elasticsearch', name: 'es', ...x });
    assert.throws(() => complete({ journalVolumeSizeMiB: 64 }), /leave out --journal-volume-size/);
    assert.throws(() => complete({ postgres: { syncStandbys: 1 } }), /--sync-standbys is for PostgreSQL services \(--type postgres\)/);
    assert.throws(() => es({ memoryMiB: 1024 }), /give --memory at least 1536 or a smaller --heap-mib/, 'the default heap of 1024 MiB does not fit');
    assert.equal(es({ memoryMiB: 1024, heapMiB: 512 }).memoryMiB, 1024);
    assert.throws(
      () => es({ config: 'network.host: 0.0.0.0\nindices.query.bool.max_clause_count: 4096' }),
      /--config may not set network\.host: firecampd writes it/,
    );
    assert.throws(() => es({ config: 'thread_pool.write.queue_size: 5' }), /use --set/);
    assert.equal(es({ config: 'indices.query.bool.max_clause_count: 4096' }).config, 'indices.query.bool.max_clause_count: 4096');
    assert.match(elasticsearch.needsStaticIps(es())!, /start the nodes with --static-ips and --ip-pool/);
    const dedicated = es({ replicas: 4, elasticsearch: { dedicatedMasters: 3 } });
    assert.match(elasticsearch.cannotScale(dedicated, 3, {})!, /dedicated cluster managers: keep at least 4/);
    assert.equal(elasticsearch.cannotScale(es(), 2, {}), undefined);
    for (const t of [redis, postgres, zookeeper, kafka, kafkaConnect, cassandra])
      assert.throws(() => completeSpec({ type: t.name, name: 'x', elasticsearch: { dedicatedMasters: 3 } }), /--dedicated-masters is for Elasticsearch/);
    assert.throws(() => completeSpec({ type: 'redis', name: 'r', heapMiB: 256 }), /\(zookeeper, kafka, kafka-connect, cassandra, elasticsearch\)/);
    assert.deepEqual(elasticsearch.secrets, []);
    assert.match(elasticsearch.describeSecret('x').describe, /no secrets/);
  });

  it("elasticsearch: each member's opensearch.yml, roles, seeds by name, its own address, heap, open files", () => {
    const spec = elasticsearch.normalize({
      type: 'elasticsearch',
      name: 'es',
      replicas: 5,
      heapMiB: 384,
      settings: { 'indices.recovery.max_bytes_per_sec': '100' },
    });
    const members = elasticsearch.members(spec, ctx(5, elasticsearch.initialState!(spec)));
    const yml = members.map((m) => file(m, 'firecampd/opensearch.yml'));
    assert.deepEqual(
      yml.map((y) => /^node\.roles: (.*)$/m.exec(y)![1]),
      [...Array(3).fill('[cluster_manager, data, ingest]'), ...Array(2).fill('[data, ingest]')],
      'the first three are cluster-manager-eligible',
    );
    for (const y of yml) {
      assert.match(y, /^cluster\.name: es$/m);
      assert.match(y, /^discovery\.seed_hosts: \[es-0\.es\.fc\.test:9300, es-1\.es\.fc\.test:9300, es-2\.es\.fc\.test:9300\]$/m);
      assert.match(y, /^node\.store\.allow_mmap: false$/m, 'vm.max_map_count stays at the default on hosts: no mmap');
      assert.match(y, /^cluster\.routing\.allocation\.awareness\.attributes: zone$/m);
      assert.match(y, /^indices\.recovery\.max_bytes_per_sec: 100mb$/m);
      assert.match(y, /^indices\.memory\.index_buffer_size: 10%$/m);
      assert.doesNotMatch(y, /initial_cluster_manager_nodes/, 'only the start script may add it');
    }
    assert.match(yml[3], /^node\.name: es-3$/m);
    assert.match(yml[3], /^network\.host: 10\.0\.0\.203$/m);
    assert.equal(members[0].env!.OPENSEARCH_JAVA_OPTS, '-Xms384m -Xmx384m');
    assert.equal(members[0].env!.DISABLE_SECURITY_PLUGIN, 'true');
    assert.match(file(members[0], 'firecampd/start.sh'), /FIRECAMPD_ZONE:-default/);
    assert.equal(members[0].port, 9200);
    assert.deepEqual(members[0].ulimits, { nofile: { soft: 65535, hard: 65535 } });
    assert.deepEqual(dockerUlimits(members[0].ulimits), [{ Name: 'nofile', Soft: 65535, Hard: 65535 }]);
    const parsed = memberSpecSchema.parse({ ...members[0], node: 'n1', epoch: 1 });
    assert.deepEqual(parsed.ulimits, members[0].ulimits, 'the agent reads the limits back from the spec');
    assert.throws(() => memberSpecSchema.parse({ ...members[0], node: 'n1', epoch: 1, ulimits: { nofile: { soft: 2, hard: 1 } } }), /soft ≤ hard/);

    const dedicated = elasticsearch.normalize({ type: 'elasticsearch', name: 'es', replicas: 5, elasticsearch: { dedicatedMasters: 3 } });
    assert.deepEqual(
      elasticsearch
        .members(dedicated, ctx(5, elasticsearch.initialState!(dedicated)))
        .map((m) => /^node\.roles: (.*)$/m.exec(file(m, 'firecampd/opensearch.yml'))![1]),
      ['[cluster_manager]', '[cluster_manager]', '[cluster_manager]', '[data, ingest]', '[data, ingest]'],
    );
    assert.throws(() => elasticsearch.members(spec, ctx(5, {}, false)), /no static IP/);
  });

  it('elasticsearch: a service of one member is a single-node cluster: no peers, no bootstrap list, no open-files demand, never scaled', () => {
    const one = elasticsearch.normalize({ type: 'elasticsearch', name: 'es', replicas: 1 });
    const state = elasticsearch.initialState!(one);
    assert.equal(state.initialManagers, '');
    const [m] = elasticsearch.members(one, ctx(1, state));
    const yml = file(m, 'firecampd/opensearch.yml');
    assert.match(yml, /^discovery\.type: single-node$/m);
    assert.doesNotMatch(yml, /discovery\.seed_hosts/);
    assert.doesNotMatch(file(m, 'firecampd/start.sh'), /initial_cluster_manager_nodes/);
    assert.equal(m.ulimits, undefined);
    assert.match(elasticsearch.cannotScale(one, 3, state)!, /single-node cluster/);
    const three = elasticsearch.normalize({ type: 'elasticsearch', name: 'es', replicas: 3 });
    assert.match(elasticsearch.cannotScale(three, 1, {})!, /cannot become a single-node one/);
    assert.equal(elasticsearch.cannotScale(three, 4, {}), undefined);
  });

  it('elasticsearch: only the members named at create bootstrap the cluster, and only while their data directory is empty', () => {
    const spec = elasticsearch.normalize({ type: 'elasticsearch', name: 'es' });
    const state = elasticsearch.initialState!(spec);
    assert.deepEqual(state, { initialManagers: 'es-0,es-1,es-2' });
    // One member alone is a single-node cluster, which bootstraps itself (see the test of single nodes).
    assert.deepEqual(elasticsearch.initialState!(elasticsearch.normalize({ type: 'elasticsearch', name: 'one', replicas: 1 })), { initialManagers: '' });
    // A scale out to 5 later: the kept state names the three of the create; the new members never bootstrap.
    const grown = elasticsearch.members({ ...spec, replicas: 5 }, ctx(5, state));
    assert.deepEqual(
      grown.map((m) => file(m, 'firecampd/start.sh').includes('initial_cluster_manager_nodes')),
      [true, true, true, false, false],
    );
    // The script itself, run by sh with the image's paths moved into a temporary directory and a stand-in for bin/opensearch.
    const dir = tempDir();
    const run = (env: Record<string, string> = {}) => {
      const script = startScript('es-0', ['es-0', 'es-1', 'es-2']).replaceAll('/usr/share/opensearch', `${dir}/home`).replaceAll('/data', `${dir}/data`);
      fs.writeFileSync(path.join(dir, 'start.sh'), script);
      return execFileSync('sh', [path.join(dir, 'start.sh')], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
    };
    for (const d of ['data/firecampd', 'home/config', 'home/bin']) fs.mkdirSync(path.join(dir, d), { recursive: true });
    fs.writeFileSync(path.join(dir, 'data/firecampd/opensearch.yml'), 'cluster.name: es\n');
    fs.writeFileSync(path.join(dir, 'home/bin/opensearch'), `#!/bin/sh\necho "args: $*"\ncat ${dir}/home/config/opensearch.yml\n`, { mode: 0o755 });
    const first = run();
    assert.match(first, /^cluster\.initial_cluster_manager_nodes: \[es-0, es-1, es-2\]$/m, 'the first start bootstraps');
    assert.match(first, /^node\.attr\.zone: 'default'$/m);
    assert.match(first, /^args: $/m, 'no security plugin to disable in this image');
    fs.mkdirSync(path.join(dir, 'data/opensearch/nodes/0'), { recursive: true });
    const again = run({ FIRECAMPD_ZONE: "eu'1", DISABLE_SECURITY_PLUGIN: 'true' });
    assert.doesNotMatch(again, /initial_cluster_manager_nodes/, 'a member with data never sees it again');
    assert.match(again, /^node\.attr\.zone: 'eu''1'$/m, 'the zone, quoted for YAML');
    fs.mkdirSync(path.join(dir, 'home/plugins/opensearch-security'), { recursive: true });
    assert.match(
      run({ DISABLE_SECURITY_PLUGIN: 'true' }),
      /^args: -Eplugins\.security\.disabled=true$/m,
      "upstream's image, which has the plugin, runs without it",
    );
  });

  it('elasticsearch: copies that cannot be placed do not hold a rollout up; copies that can, do', () => {
    const row = (index: string, shard: string, prirep: string, state: string) => ({
      index,
      shard,
      prirep,
      state,
      node: state === 'UNASSIGNED' ? null : 'es-0',
    });
    // One replica on a single data node: yellow for good, nothing to wait for.
    assert.equal(copiesShort([row('a', '0', 'p', 'STARTED'), row('a', '0', 'r', 'UNASSIGNED')], 1), 0);
    // The same on two data nodes: the replica is one to wait for; so is one that is initializing.
    assert.equal(copiesShort([row('a', '0', 'p', 'STARTED'), row('a', '0', 'r', 'UNASSIGNED')], 2), 1);
    assert.equal(
      copiesShort([row('a', '0', 'p', 'STARTED'), row('a', '0', 'r', 'INITIALIZING'), row('a', '1', 'p', 'RELOCATING'), row('a', '1', 'r', 'STARTED')], 3),
      1,
    );
    // Two replicas on two data nodes: one copy can never be placed.
    assert.equal(copiesShort([row('b', '0', 'p', 'STARTED'), row('b', '0', 'r', 'STARTED'), row('b', '0', 'r', 'UNASSIGNED')], 2), 0);
  });
  it('elasticsearch: a rollout step, allocation back once the member runs a new process, and a scale in drained before it goes (a fake cluster)', async () => {
    const fake = new FakeCluster();
    const hosts = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
    await fake.start(hosts);
    try {
      const spec = elasticsearch.normalize({ type: 'elasticsearch', name: 'es' });
      const specs = elasticsearch.members(spec, ctx(3, elasticsearch.initialState!(spec)));
      const members: PlacedMember[] = specs.map((m, i) => ({ spec: { ...m, node: `n${i}`, epoch: 1 }, host: hosts[i] }));
      const typeCtx = (state: TypeContext['state'] = {}): TypeContext => ({
        state,
        secrets: {},
        log: createLogger({ level: 'fatal', pretty: false }),
        released: () => true,
        exec: () => Promise.reject(new Error('no exec here')),
        lookup: () => undefined,
      });
      const allocation = () => fake.persistent['cluster.routing.allocation.enable'];

      assert.equal(await elasticsearch.initialize(spec, members, typeCtx()), undefined, 'every member in, green');
      assert.deepEqual(
        Object.values(await elasticsearch.roles!(spec, members, typeCtx())).map((r) => r.role),
        ['data, cluster_manager-eligible', 'cluster_manager', 'data, cluster_manager-eligible'],
      );

      // The elected cluster manager (es-1) goes last; before the restart, allocation to primaries only and a flush.
      const step = await elasticsearch.rolloutStep(spec, members, members, typeCtx());
      assert.deepEqual(step, { restart: 'es-0', state: { restarting: 'es-0', restartingProcess: 'p0' } });
      assert.deepEqual(fake.calls, ['PUT /_cluster/settings', 'POST /_flush']);
      assert.equal(allocation(), 'primaries');
      const rolling = typeCtx(step.state);
      await upkeep(spec, members, rolling);
      assert.equal(allocation(), 'primaries', 'the old process still runs: its restart is ahead');
      fake.nodes.delete('es-0');
      await upkeep(spec, members, rolling);
      assert.equal(allocation(), 'primaries', 'es-0 is away');
      fake.nodes.set('es-0', 'p0-new');
      await upkeep(spec, members, rolling);
      assert.equal(allocation(), undefined, 'es-0 runs a new process: allocation is back to all shards');
      // Copies of es-0 still recovering: the next restart waits for green.
      fake.health = 'yellow';
      fake.shards = [
        { index: 'docs', shard: '0', prirep: 'p', state: 'STARTED', node: 'es-1' },
        { index: 'docs', shard: '0', prirep: 'r', state: 'INITIALIZING', node: 'es-0' },
      ];
      const wait = await elasticsearch.rolloutStep(spec, members, members.slice(1), rolling);
      assert.ok('wait' in wait && /1 shard copies to recover/.test(wait.wait), JSON.stringify(wait));
      fake.health = 'green';
      assert.deepEqual(await elasticsearch.rolloutStep(spec, members, members.slice(1), rolling), {
        restart: 'es-2',
        state: { restarting: 'es-2', restartingProcess: 'p2' },
      });

      // A scale in to 2: es-2 drained, then out of the voting configuration, then it may go.
      delete fake.persistent['cluster.routing.allocation.enable'];
      fake.calls = [];
      const leave = () => elasticsearch.leave!(spec, members, [members[2]], typeCtx());
      assert.match((await leave())!, /moving shards off es-2/);
      assert.equal(fake.persistent['cluster.routing.allocation.exclude._name'], 'es-2');
      fake.shards = [{ index: 'docs', shard: '0', prirep: 'r', state: 'RELOCATING', node: 'es-2 -> 10.0.0.200 id-es-0 es-0' }];
      assert.match((await leave())!, /moving 1 shard copies off es-2/);
      fake.shards = [{ index: 'docs', shard: '0', prirep: 'r', state: 'STARTED', node: 'es-0' }];
      assert.match((await leave())!, /taking es-2 out of the voting configuration/);
      assert.deepEqual(fake.voting, ['es-2']);
      assert.equal(await leave(), undefined, 'drained and out of the voting configuration: it may go');
      // Its container is still stopping: the exclusions stay; once it has left the cluster they go.
      const staying = members.slice(0, 2);
      await upkeep(spec, staying, typeCtx());
      assert.equal(fake.persistent['cluster.routing.allocation.exclude._name'], 'es-2');
      fake.nodes.delete('es-2');
      await upkeep(spec, staying, typeCtx());
      assert.equal(fake.persistent['cluster.routing.allocation.exclude._name'], undefined);
      assert.deepEqual(fake.voting, []);
      assert.match((await elasticsearch.initialize(spec, members, typeCtx()))!, /waiting for es-2 to join the cluster/);
      assert.equal(await elasticsearch.notReady(spec, members[2], typeCtx()), 'not in the cluster');
    } finally {
      await fake.stop();
    }
  });
});
