// The pure parts of the JVM service types: what ZooKeeper, Kafka, Kafka Connect and Cassandra refuse,
// and what their members' specs say (roles, listeners, the voters, secrets
// as templates only), without a cluster. The test-bed files run them for real.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cassandra, jmxPort, parseStatus } from '../src/catalog/services/cassandra/cassandra.ts';
import { balancePlan, controllersFor, kafka } from '../src/catalog/services/kafka/kafka.ts';
import { kafkaConnect } from '../src/catalog/services/kafka-connect/kafka-connect.ts';
import { readConnectorConfig } from '../src/cli/connector.ts';
import { fillSecrets } from '../src/agent/members.ts';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './helpers/proc.ts';
import { postgres } from '../src/catalog/services/postgres/postgres.ts';
import { redis } from '../src/catalog/services/redis/redis.ts';
import { zookeeper } from '../src/catalog/services/zookeeper/zookeeper.ts';
import type { MemberContext } from '../src/catalog/types.ts';

const ctx = (n: number, state: MemberContext['state'] = {}, staticIps = true): MemberContext => ({
  domain: 'fc.test',
  ips: Array.from({ length: n }, (_, i) => (staticIps ? `10.0.0.${200 + i}` : undefined)),
  state,
  nodeAddrs: ['10.0.0.11', '10.0.0.12', '10.0.0.13'],
  needed: {},
});
const file = (m: { configFiles?: { path: string; content: string }[] }, path: string) => m.configFiles!.find((f) => f.path === path)!.content;

describe('JVM service types', () => {
  it('zookeeper: an odd ensemble of up to 7, 3 by default, and --heap-mib for the JVM only', () => {
    assert.equal(zookeeper.normalize({ type: 'zookeeper', name: 'zk' }).replicas, 3);
    assert.throws(() => zookeeper.normalize({ type: 'zookeeper', name: 'zk', replicas: 4 }), /1, 3, 5 or 7 members/);
    assert.equal(zookeeper.cannotScale(zookeeper.normalize({ type: 'zookeeper', name: 'zk' }), 5, {}), undefined);
    assert.match(zookeeper.cannotScale(zookeeper.normalize({ type: 'zookeeper', name: 'zk' }), 2, {})!, /1, 3, 5 or 7/);
    assert.throws(() => redis.normalize({ type: 'redis', name: 'r', heapMiB: 256 }), /--heap-mib is for the types that run on a JVM/);
    assert.throws(() => postgres.normalize({ type: 'postgres', name: 'pg', heapMiB: 256 }), /--heap-mib is for the types that run on a JVM/);
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
    assert.throws(() => kafkaConnect.normalize({ type: 'kafka-connect', name: 'kc', journalVolumeSizeMiB: 64 }), /leave out --journal-volume-size/);
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
    assert.doesNotMatch(file(members[2], 'firecampd/start.sh'), /bootstrap/, 'a seed never waits');
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
});
