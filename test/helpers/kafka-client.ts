// A Kafka client for the end-to-end tests (kafkajs), run in the test bed's
// client namespace. Brokers advertise their DNS names: it looks them up
// through the nodes' embedded DNS servers, anew on every connection.
//
//   kafka-client.ts --dns IP:53[,…] --brokers kf-0.kf.fc.test:9092,… --password P --topic T topic PARTITIONS
//       makes topic T with PARTITIONS partitions and replication factor 3; prints {"created": true|false}
//   … produce N
//       sends batches 1..N of 100 messages each, batch B to partition B mod 3, with acks=all (an idempotent producer), each
//       batch acknowledged before the next; prints {"ready":true} after the first, and the totals
//   … load
//       the same until stdin closes (see write-loop.ts for what it prints), 50 ms apart: a
//       broker acknowledges faster than the bed's two cores could check afterwards
//   … check N
//       reads the topic from the start; prints {"present": K, "missingCount", "missing": [up to 20]}
//       for the messages of batches 1..N, once it has them all, or nothing new came for 20 s after it joined its group
//   … --topic P topics
//       makes topics P-1, P-2, … (2 partitions, replication factor 3, retention.ms 3600000+i), each acknowledged
//       before the next, until stdin closes (write-loop.ts's output)
//   … --topic P topics-delete
//       deletes every topic named P-…; prints {"deleted": K}
//   … --topic P topics-check N
//       prints {"present": K, "missing": [names], "wrong": [names whose partitions or retention.ms differ]} for P-1..P-N
//   … --topic T offsets set|get
//       group "billing" on topic T: commits offsets 10, 20, 30 to its partitions 0, 1, 2 (set); prints {"offsets": […]} (get)
//
// A batch is acknowledged once the send of all its messages returned: acks=all, so every in-sync
// replica has it, and min.insync.replicas says how many that is at least.
import dns from 'node:dns';
import { Kafka, logLevel } from 'kafkajs';
import { resolvingSocketFactory } from '../../src/catalog/services/kafka/kafka.ts';
import { writeLoop } from './write-loop.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`kafka-client: ${name} is required`);
  return args[i + 1];
};
const BATCH = 100;
/** Batches go to partitions 0, 1, 2 in turn (every test topic has at least 3). */
const PARTITIONS = 3;
const topic = flag('--topic');
const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 2 });
resolver.setServers(flag('--dns').split(','));
const mode = ['topic', 'produce', 'check', 'topics-check', 'offsets'].includes(args.at(-2) ?? '') ? args.at(-2)! : args.at(-1)!;

const kafka = new Kafka({
  clientId: 'firecampd-test',
  brokers: flag('--brokers').split(','),
  sasl: { mechanism: 'scram-sha-512', username: 'admin', password: flag('--password') },
  connectionTimeout: 3000,
  requestTimeout: 10_000,
  retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 2000 },
  logLevel: logLevel.NOTHING,
  socketFactory: resolvingSocketFactory(async (name) => (await resolver.resolve4(name))[0]),
});

const value = (batch: number, k: number) => `${batch}:${k}`;

async function main(): Promise<void> {
  if (mode === 'topic') {
    const admin = kafka.admin();
    await admin.connect();
    const partitions = Number(args.at(-1));
    const created = await admin.createTopics({ waitForLeaders: false, topics: [{ topic, numPartitions: partitions, replicationFactor: 3 }] });
    // Then a leader for every partition, asked until the brokers' metadata has them: a busy broker answers "does not
    // host this topic-partition" for a while after the controller made it, which kafkajs's own wait retries only twice.
    for (const deadline = Date.now() + 60_000; ;) {
      const led = await admin
        .fetchTopicMetadata({ topics: [topic] })
        .then((m) => m.topics[0].partitions.filter((p) => p.leader >= 0).length)
        .catch(() => 0);
      if (led === partitions) break;
      if (Date.now() > deadline) throw new Error(`topic ${topic}: ${led} of ${partitions} partitions have a leader after 60 s`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await admin.disconnect();
    process.stdout.write(JSON.stringify({ created }) + '\n');
    return;
  }
  if (mode === 'check') await check(Number(args.at(-1)));
  else if (mode === 'topics') await makeTopics();
  else if (mode === 'topics-check') await checkTopics(Number(args.at(-1)));
  else if (mode === 'topics-delete') await deleteTopics();
  else if (mode === 'offsets') await offsets(args.at(-1) === 'set');
  else await produce(mode === 'produce' ? Number(args.at(-1)) : undefined);
}

async function produce(end: number | undefined): Promise<void> {
  // Metadata looked at again every second, not every 5 minutes: a partition's new leader is found soon after the old one died.
  const newProducer = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, metadataMaxAge: 1000 });
  let producer = newProducer();
  await producer.connect();
  await writeLoop({
    // kafkajs keeps dialling a dead leader it knows: after a failed send, a new producer starts from fresh metadata.
    afterError: async () => {
      await producer.disconnect().catch(() => {});
      producer = newProducer();
      await producer.connect().catch(() => {});
    },
    start: 1,
    ...(end === undefined ? { paceMs: 50 } : { end }),
    write: async (batch) => {
      // One partition per send, in turn: a send that spans brokers can resolve though one broker's part failed
      // when that broker dies (kafkajs issue #1303; seen here: 45 messages of one acknowledged batch missing).
      const partition = batch % PARTITIONS;
      await producer.send({ topic, acks: -1, timeout: 10_000, messages: Array.from({ length: BATCH }, (_, k) => ({ partition, value: value(batch, k) })) });
    },
  });
  await producer.disconnect();
}

async function check(batches: number): Promise<void> {
  const want = new Set<string>();
  for (let b = 1; b <= batches; b++) for (let k = 0; k < BATCH; k++) want.add(value(b, k));
  const total = want.size;
  const consumer = kafka.consumer({ groupId: `check-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  // The clock of "nothing new" starts once the group has its partitions: joining may wait for a coordinator
  // that moved with a dead broker.
  let lastNew = Number.POSITIVE_INFINITY;
  consumer.on(consumer.events.GROUP_JOIN, () => (lastNew = Math.min(lastNew, Date.now())));
  const deadline = Date.now() + 180_000;
  await consumer.run({
    eachMessage: ({ message }) => {
      if (message.value && want.delete(message.value.toString())) lastNew = Date.now();
      return Promise.resolve();
    },
  });
  // Bounded: every message seen, nothing new for 20 s once it joined, or 3 minutes in all.
  while (want.size > 0 && Date.now() - lastNew < 20_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await consumer.disconnect();
  const missing = [...want];
  process.stdout.write(JSON.stringify({ present: total - missing.length, missingCount: missing.length, missing: missing.slice(0, 20) }) + '\n');
}

const retention = (i: number) => String(3_600_000 + i);

async function makeTopics(): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await writeLoop({
    start: 1,
    // A topic every half second: enough to back up while topics are made, few enough that the bed's later
    // rebalances do not move them for minutes.
    paceMs: 500,
    write: async (i) => {
      // Made, or there already (a retry after a lost answer): either way acknowledged.
      await admin.createTopics({
        waitForLeaders: false,
        topics: [{ topic: `${topic}-${i}`, numPartitions: 2, replicationFactor: 3, configEntries: [{ name: 'retention.ms', value: retention(i) }] }],
      });
    },
  });
  await admin.disconnect();
}

async function deleteTopics(): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${topic}-`));
  if (mine.length > 0) await admin.deleteTopics({ topics: mine, timeout: 60_000 });
  await admin.disconnect();
  process.stdout.write(JSON.stringify({ deleted: mine.length }) + '\n');
}

async function checkTopics(n: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const have = new Set(await admin.listTopics());
  const want = Array.from({ length: n }, (_, k) => `${topic}-${k + 1}`);
  const present = want.filter((t) => have.has(t));
  const wrong: string[] = [];
  if (present.length > 0) {
    const { topics } = await admin.fetchTopicMetadata({ topics: present });
    const { resources } = await admin.describeConfigs({ resources: present.map((name) => ({ type: 2, name })), includeSynonyms: false });
    for (const t of topics) {
      const i = Number(t.name.slice(topic.length + 1));
      const r = resources.find((x) => x.resourceName === t.name)?.configEntries.find((e) => e.configName === 'retention.ms')?.configValue;
      if (t.partitions.length !== 2 || r !== retention(i)) wrong.push(`${t.name} (${t.partitions.length} partitions, retention.ms ${r})`);
    }
  }
  await admin.disconnect();
  process.stdout.write(JSON.stringify({ present: present.length, missing: want.filter((t) => !have.has(t)), wrong }) + '\n');
}

async function offsets(set: boolean): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  if (set) await admin.setOffsets({ groupId: 'billing', topic, partitions: [0, 1, 2].map((p) => ({ partition: p, offset: String((p + 1) * 10) })) });
  const got = (await admin.fetchOffsets({ groupId: 'billing', topics: [topic] }))[0]?.partitions ?? [];
  await admin.disconnect();
  process.stdout.write(
    JSON.stringify({ offsets: got.map((p) => ({ partition: p.partition, offset: p.offset })).sort((a, b) => a.partition - b.partition) }) + '\n',
  );
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`kafka-client: ${err.message}\n`);
    process.exit(1);
  },
);
