// Kafka's backups hold the cluster's metadata, not its messages: the topics
// (partition counts, replication factors, the configs set on each), the
// consumer groups' committed offsets and the SCRAM users' names. A restored
// service gets its topics and offsets back through the Admin API once its
// brokers run. Messages are a stream, not a state: a copy of the logs is
// stale the moment it is taken and cannot be merged back; what keeps them is
// replication within the cluster and, across clusters, MirrorMaker 2 (see
// docs/backups.md).
//
// SCRAM users keep only a salted hash, which Kafka never hands out: a
// restored service has the admin user (its password comes with the backup's
// secrets); every other user is named in the log, to be given a password
// again.
import { z } from 'zod';
import type { Admin } from 'kafkajs';
import { memberIndex } from '../../../agent/members.ts';
import { execOk } from '../../member-exec.ts';
import type { PlacedMember, ServiceSpec, TypeBackup, TypeContext } from '../../types.ts';
import { CLIENT_CONFIG, KAFKA_ADMIN, KAFKA_PORT, withAdmin } from './tools.ts';

export const METADATA_PART = 'metadata';

const metadataSchema = z
  .object({
    format: z.literal(1),
    topics: z.array(
      z.object({
        name: z.string(),
        partitions: z.number().int().positive(),
        replicationFactor: z.number().int().positive(),
        configs: z.record(z.string(), z.string()),
      }),
    ),
    groups: z.array(
      z.object({ id: z.string(), offsets: z.array(z.object({ topic: z.string(), partition: z.number().int().nonnegative(), offset: z.string() })) }),
    ),
    users: z.array(z.object({ name: z.string(), mechanisms: z.string() })),
  })
  .strict();
export type KafkaMetadata = z.infer<typeof metadataSchema>;

/** Topics of the cluster's own (the consumer offsets, transactions' state) are the brokers' business, not the user's. */
const internal = (topic: string) => topic.startsWith('__');

/** The SCRAM users as `kafka-configs.sh --describe --entity-type users` lists them: name and mechanisms. */
export function parseScramUsers(out: string): { name: string; mechanisms: string }[] {
  return [...out.matchAll(/user-principal '([^']+)' are (.+)$/gm)].map((m) => ({ name: m[1], mechanisms: m[2].trim() }));
}

async function readMetadata(a: Admin, users: { name: string; mechanisms: string }[]): Promise<KafkaMetadata> {
  const { ConfigResourceTypes, ConfigSource } = (await import('kafkajs')).default;
  const names = (await a.listTopics()).filter((t) => !internal(t)).sort();
  const { topics } = names.length > 0 ? await a.fetchTopicMetadata({ topics: names }) : { topics: [] };
  const described =
    names.length > 0
      ? (await a.describeConfigs({ resources: names.map((name) => ({ type: ConfigResourceTypes.TOPIC, name })), includeSynonyms: false })).resources
      : [];
  const groups = (await a.listGroups()).groups.map((g) => g.groupId).sort();
  return {
    format: 1,
    topics: topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.length,
      replicationFactor: t.partitions[0]?.replicas.length ?? 1,
      // Only what was set on the topic: the rest is the cluster's defaults, which the restored service has of its own.
      configs: Object.fromEntries(
        (described.find((r) => r.resourceName === t.name)?.configEntries ?? [])
          .filter((e) => e.configSource === ConfigSource.TOPIC_CONFIG && !e.isSensitive)
          .map((e) => [e.configName, e.configValue]),
      ),
    })),
    groups: await Promise.all(
      groups.map(async (id) => ({
        id,
        offsets: (await a.fetchOffsets({ groupId: id }))
          .filter((t) => !internal(t.topic))
          .flatMap((t) => t.partitions.filter((p) => p.offset !== '-1').map((p) => ({ topic: t.topic, partition: p.partition, offset: p.offset }))),
      })),
    ),
    users,
  };
}

/** The member of lowest index, where the catalog runs Kafka's own tools. */
const first = (members: PlacedMember[]) => [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))[0];

async function scramUsers(members: PlacedMember[], ctx: TypeContext): Promise<{ name: string; mechanisms: string }[]> {
  const at = first(members);
  const out = await execOk(ctx.exec, at.spec, [
    '/opt/kafka/bin/kafka-configs.sh',
    '--bootstrap-server',
    `${at.spec.dnsName}:${KAFKA_PORT}`,
    '--command-config',
    CLIENT_CONFIG,
    '--describe',
    '--entity-type',
    'users',
  ]);
  return parseScramUsers(out);
}

/** Topics made (those the restored cluster lacks), offsets committed; idempotent. */
async function applyMetadata(spec: ServiceSpec, meta: KafkaMetadata, members: PlacedMember[], ctx: TypeContext): Promise<string | undefined> {
  return withAdmin(members, ctx, async (a) => {
    const have = new Set(await a.listTopics());
    const missing = meta.topics.filter((t) => !have.has(t.name));
    if (missing.length > 0) {
      await a.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          // As many replicas as it had, or as the restored service has brokers (it has as many as the source had).
          replicationFactor: Math.min(t.replicationFactor, spec.replicas),
          configEntries: Object.entries(t.configs).map(([name, value]) => ({ name, value })),
        })),
      });
      ctx.log.info({ service: spec.name, topics: missing.length }, 'kafka: made the topics of the backup');
    }
    for (const g of meta.groups) {
      for (const topic of new Set(g.offsets.map((o) => o.topic))) {
        const partitions = g.offsets.filter((o) => o.topic === topic).map((o) => ({ partition: o.partition, offset: o.offset }));
        await a.setOffsets({ groupId: g.id, topic, partitions });
      }
    }
    const others = meta.users.filter((u) => u.name !== KAFKA_ADMIN);
    if (others.length > 0)
      ctx.log.warn(
        { service: spec.name, users: others.map((u) => u.name) },
        'kafka: SCRAM users of the backup need a password again (Kafka keeps only a salted hash): kafka-configs.sh --alter --add-config SCRAM-SHA-512=[password=…] --entity-type users --entity-name NAME',
      );
    return undefined;
  });
}

export const kafkaBackup: TypeBackup = {
  async parts(_spec, members, ctx) {
    const users = await scramUsers(members, ctx);
    const meta = await withAdmin(members, ctx, (a) => readMetadata(a, users));
    return [{ member: first(members).spec.name, name: METADATA_PART, content: Buffer.from(JSON.stringify(meta, null, 1)) }];
  },

  /** Nothing on the members' volumes: a restored broker starts empty, and the topics come back through the Admin API. */
  restore: () => undefined,

  async apply(spec, members, ctx, part) {
    const meta = metadataSchema.parse(JSON.parse((await part(METADATA_PART)).toString('utf8')));
    return applyMetadata(spec, meta, members, ctx);
  },

  async check(_spec, members, ctx) {
    return withAdmin(members, ctx, async (a) => {
      const topics = (await a.listTopics()).filter((t) => !internal(t));
      const { topics: meta } = topics.length > 0 ? await a.fetchTopicMetadata({ topics }) : { topics: [] };
      const partitions = meta.reduce((n, t) => n + t.partitions.length, 0);
      const groups = (await a.listGroups()).groups.length;
      return `${topics.length} topics, ${partitions} partitions, ${groups} consumer groups`;
    });
  },
};
