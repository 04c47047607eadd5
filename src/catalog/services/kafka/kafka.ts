// Kafka in KRaft mode: brokers with their own controller quorum, no ZooKeeper.
//
// The first members (1 of 1 or 2, 3 of 3 or 4, 5 of 5 and more) are
// controllers and brokers at once; the others are brokers only. The voters
// are fixed at create (a static quorum, controller.quorum.voters), so scaling
// adds or removes brokers only. The cluster id is made once, kept in the
// service's type state, and a member formats its storage with it on its first
// start only.
//
// Clients and brokers authenticate with SASL/SCRAM-SHA-512 as `admin`, whose
// password is generated at create; the controllers' own listener is plain,
// bound to each member's static IP. Brokers advertise their DNS names.
//
// Defaults lean to durability: replication factor 3 (or the member count if
// smaller), min.insync.replicas 2, unclean leader election off. A rollout
// restarts one broker at a time with a controlled shutdown (SIGTERM), brokers
// that are not the active controller first, and the next only once no
// partition is under-replicated.
import { JMX_EXPORTER_PORT, jmxExporter } from '../../jmx-exporter.ts';
import { KAFKA_JMX_RULES } from './jmx-rules.ts';
import { randomBytes } from 'node:crypto';
import type { Admin } from 'kafkajs';
import { memberIndex, type MemberSpec } from '../../../agent/members.ts';
import { kafkaBackup } from './backup.ts';
import { CLIENT_CONFIG, DATA, KAFKA_ADMIN, KAFKA_PORT, withAdmin } from './tools.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import { execOk } from '../../member-exec.ts';
import type { MemberContext, MemberRole, PlacedMember, RolloutStep, ServiceSpec, ServiceSpecInput, ServiceType, TypeContext, TypeState } from '../../types.ts';
import { memberResources, trueOrFalse, wholeNumber } from '../../types.ts';

const CONTROLLER_PORT = 9093;
/** The upstream image's appuser. */
const KAFKA_USER = '1000:1000';
const JOURNAL = '/journal';
const DEFAULT_HEAP_MIB = 512;

/** How many of the first members are controllers: an odd quorum of up to 5. */
export const controllersFor = (members: number) => (members >= 5 ? 5 : members >= 3 ? 3 : 1);
const controllersOf = (spec: ServiceSpec, state: TypeState) => Number(state.controllers ?? controllersFor(spec.replicas));
/** A Kafka cluster id: 16 random bytes, base64url without padding, as `kafka-storage.sh random-uuid` makes (never with a leading "-"). */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}
export const replicationFactor = (spec: ServiceSpec) => Math.min(3, spec.replicas);

/** Partitions whose in-sync replicas are fewer than their replicas, as "topic/partition". */
async function underReplicated(a: Admin): Promise<string[]> {
  const { topics } = await a.fetchTopicMetadata();
  return topics.flatMap((t) => t.partitions.filter((p) => p.isr.length < p.replicas.length).map((p) => `${t.name}/${p.partitionId}`));
}

/** A partition's replicas by broker id, in preference order (the first leads). */
export interface PartitionReplicas {
  topic: string;
  partition: number;
  replicas: number[];
}

/** How many replicas each of `brokers` holds. */
function replicaCounts(partitions: PartitionReplicas[], brokers: number[]): Map<number, number> {
  const load = new Map(brokers.map((b) => [b, 0]));
  for (const p of partitions) for (const r of p.replicas) if (load.has(r)) load.set(r, load.get(r)! + 1);
  return load;
}

/**
 * The partitions to move so that each topic's replicas spread evenly over
 * the brokers (none holds more than one over another), and then all
 * replicas too: a replica at a time from the busiest broker to the idlest
 * one that the partition lacks (ties go by the count over all topics), in
 * the same place of the list, so a moved preferred leader makes the new
 * broker lead. Only changed partitions, each once, with its final replicas.
 */
export function balancePlan(partitions: PartitionReplicas[], brokers: number[]): PartitionReplicas[] {
  const current = partitions.map((p) => ({ ...p, replicas: [...p.replicas] })).sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  const total = replicaCounts(current, brokers);
  const changed = new Set<PartitionReplicas>();
  const spread = (group: PartitionReplicas[], load: Map<number, number>) => {
    // Each move narrows the spread; bounded by the number of replicas.
    for (let moves = group.reduce((n, p) => n + p.replicas.length, 0); moves > 0; moves--) {
      const order = [...load.keys()].sort((a, b) => load.get(a)! - load.get(b)! || total.get(a)! - total.get(b)! || a - b);
      const [idlest, busiest] = [order[0], order[order.length - 1]];
      if (load.get(busiest)! - load.get(idlest)! <= 1) return;
      const p = group.find((x) => x.replicas.includes(busiest) && !x.replicas.includes(idlest));
      if (!p) return;
      p.replicas[p.replicas.indexOf(busiest)] = idlest;
      for (const counts of new Set([load, total])) {
        counts.set(busiest, counts.get(busiest)! - 1);
        counts.set(idlest, counts.get(idlest)! + 1);
      }
      changed.add(p);
    }
  };
  for (const topic of new Set(current.map((p) => p.topic))) {
    const group = current.filter((p) => p.topic === topic);
    spread(group, replicaCounts(group, brokers));
  }
  spread(current, total);
  return [...changed];
}

/**
 * One step of a reassignment with kafka-reassign-partitions.sh in the member
 * of lowest index: says `what` while one runs; otherwise asks `plan` for the
 * partitions to move (given every partition's replicas) and starts that, or
 * returns undefined when there is nothing to move.
 */
async function reassign(
  members: PlacedMember[],
  ctx: TypeContext,
  what: string,
  plan: (p: PartitionReplicas[]) => PartitionReplicas[],
): Promise<string | undefined> {
  const at = [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))[0];
  const tool = ['/opt/kafka/bin/kafka-reassign-partitions.sh', '--bootstrap-server', `${at.spec.dnsName}:${KAFKA_PORT}`, '--command-config', CLIENT_CONFIG];
  const active = await execOk(ctx.exec, at.spec, [...tool, '--list'], { timeoutMs: 60_000 });
  if (/\S+-\d+: replicas/.test(active)) return what;
  const { topics } = await withAdmin(members, ctx, (a) => a.fetchTopicMetadata());
  const partitions = topics.flatMap((t) => t.partitions.map((p) => ({ topic: t.name, partition: p.partitionId, replicas: p.replicas })));
  const moves = plan(partitions);
  if (moves.length === 0) return undefined;
  const file = '/tmp/firecampd-reassignment.json';
  await execOk(ctx.exec, at.spec, ['sh', '-c', 'printf %s "$1" > "$2"', 'plan', JSON.stringify({ version: 1, partitions: moves }), file]);
  await execOk(ctx.exec, at.spec, [...tool, '--reassignment-json-file', file, '--execute'], { timeoutMs: 60_000 });
  ctx.log.info({ service: at.spec.service, partitions: moves.length }, `kafka: ${what}`);
  return `${what}: ${moves.length} partitions`;
}

export { KAFKA_ADMIN, KAFKA_PORT };
export { resolvingSocketFactory } from './tools.ts';

export const kafka: ServiceType = {
  name: 'kafka',
  title: 'Kafka',
  image: 'apache/kafka:4.1.1',
  defaults: { replicas: 3, volumeSizeMiB: 1024 },
  jvm: true,
  journal: 'the KRaft metadata log',
  secrets: ['admin'],
  backup: kafkaBackup,
  settings: {
    'default.replication.factor': {
      describe: 'replicas of a topic made without a count (default: 3, or the member count if smaller)',
      check: (v) => wholeNumber(v, 1, 64),
    },
    'min.insync.replicas': {
      describe: 'replicas that must have a write before acks=all acknowledges it (default: 2, 1 for a single member)',
      check: (v) => wholeNumber(v, 1, 64),
    },
    'num.partitions': { describe: 'partitions of a topic made without a count', default: '3', check: (v) => wholeNumber(v, 1, 10_000) },
    'log.retention.hours': { describe: 'hours a message is kept', default: '168', check: (v) => wholeNumber(v, 1, 1_000_000) },
    'unclean.leader.election.enable': { describe: 'let a replica that is not in sync lead (loses acknowledged writes)', default: 'false', check: trueOrFalse },
    'delete.topic.enable': { describe: 'allow deleting topics', default: 'true', check: trueOrFalse },
    'auto.create.topics.enable': { describe: 'make a topic when a client first uses it', default: 'true', check: trueOrFalse },
    'message.max.bytes': { describe: 'the largest record batch a broker takes', default: '1048588', check: (v) => wholeNumber(v, 1024, 1 << 30) },
  },

  describeSecret: () => ({ user: KAFKA_ADMIN, describe: 'the SASL/SCRAM-SHA-512 user of clients and brokers' }),

  normalize(spec: ServiceSpecInput): ServiceSpec {
    const replicas = spec.replicas ?? kafka.defaults.replicas;
    const n = { ...spec, replicas };
    for (const k of ['default.replication.factor', 'min.insync.replicas']) {
      const v = Number(spec.settings?.[k] ?? 0);
      if (v > replicas) throw new UserError(`${k} ${v} is more than the ${replicas} members: raise --replicas or lower it`);
    }
    return n;
  },

  initialState: (spec) => ({ clusterId: newClusterId(), controllers: controllersFor(spec.replicas) }),

  needsStaticIps: () => undefined,

  cannotScale(spec, replicas, state) {
    const controllers = controllersOf(spec, state);
    if (replicas < controllers) return `the first ${controllers} members are the controller quorum, fixed at create: keep at least ${controllers}`;
    const rf = Number(spec.settings?.['default.replication.factor'] ?? replicationFactor(spec));
    if (replicas < rf) return `default.replication.factor is ${rf}: keep at least ${rf} members`;
    return undefined;
  },

  group: () => 0,

  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const journal = spec.journalVolumeSizeMiB !== undefined;
    const heap = spec.heapMiB ?? DEFAULT_HEAP_MIB;
    const controllers = controllersOf(spec, ctx.state);
    const clusterId = String(ctx.state.clusterId ?? '');
    const names = Array.from({ length: spec.replicas }, (_, i) => `${spec.name}-${i}.${spec.name}.${ctx.domain}`);
    const voters = names
      .slice(0, controllers)
      .map((n, i) => `${i}@${n}:${CONTROLLER_PORT}`)
      .join(',');
    const rf = replicationFactor(spec);
    const setting = (k: string, fallback: string) => spec.settings?.[k] ?? kafka.settings[k].default ?? fallback;
    return names.map((dnsName, i) => {
      const name = `${spec.name}-${i}`;
      const ip = ctx.ips[i];
      const bind = ip ?? '0.0.0.0';
      const controller = i < controllers;
      const conf = [
        '# Written by firecampd; change settings with "firecampd service config".',
        `process.roles=${controller ? 'broker,controller' : 'broker'}`,
        `node.id=${i}`,
        `controller.quorum.voters=${voters}`,
        `listeners=SASL_PLAINTEXT://${bind}:${KAFKA_PORT}${controller ? `,CONTROLLER://${bind}:${CONTROLLER_PORT}` : ''}`,
        `advertised.listeners=SASL_PLAINTEXT://${dnsName}:${KAFKA_PORT}`,
        'listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT',
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=SASL_PLAINTEXT',
        'sasl.enabled.mechanisms=SCRAM-SHA-512',
        'sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512',
        `log.dirs=${DATA}/kafka`,
        ...(journal ? [`metadata.log.dir=${JOURNAL}/metadata`] : []),
        `default.replication.factor=${setting('default.replication.factor', String(rf))}`,
        `min.insync.replicas=${setting('min.insync.replicas', String(Math.min(2, spec.replicas)))}`,
        `offsets.topic.replication.factor=${rf}`,
        `transaction.state.log.replication.factor=${rf}`,
        `transaction.state.log.min.isr=${Math.min(2, rf)}`,
        ...[
          'num.partitions',
          'log.retention.hours',
          'unclean.leader.election.enable',
          'delete.topic.enable',
          'auto.create.topics.enable',
          'message.max.bytes',
        ].map((k) => `${k}=${setting(k, '')}`),
        // Leaders go back to the preferred replicas after a restart, so that one broker does not keep them all.
        'auto.leader.rebalance.enable=true',
        ...(spec.config ? [spec.config] : []),
      ].join('\n');
      const jmx = jmxExporter(ip, DATA, KAFKA_JMX_RULES);
      return {
        service: spec.name,
        name,
        image: spec.image ?? kafka.image,
        command: ['sh', `${DATA}/firecampd/start.sh`],
        user: KAFKA_USER,
        env: { KAFKA_HEAP_OPTS: `-Xmx${heap}m -Xms${heap}m` },
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? kafka.defaults.volumeSizeMiB, mountPath: DATA },
        ...(journal ? { journal: { id: `${name}-journal`, sizeMiB: spec.journalVolumeSizeMiB!, mountPath: JOURNAL } } : {}),
        dnsName,
        ...(ip ? { ip } : {}),
        port: KAFKA_PORT,
        ports: [KAFKA_PORT, CONTROLLER_PORT, JMX_EXPORTER_PORT],
        metrics: jmx.metrics,
        configFiles: [
          { path: 'firecampd/server.properties', content: conf + '\n' },
          { path: 'firecampd/start.sh', content: startScript(clusterId, dnsName, jmx.jvmFlag), mode: 0o755 },
          jmx.configFile,
        ],
        secretFiles: [
          { path: '.admin-password', template: '{{admin}}' },
          // The broker's own login to the other brokers, and the tools' (kafka-topics.sh --command-config).
          {
            path: 'firecampd/jaas.properties',
            template: `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${KAFKA_ADMIN}" password="{{admin}}";\n`,
          },
          {
            path: 'firecampd/client.properties',
            template: `security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${KAFKA_ADMIN}" password="{{admin}}";\n`,
          },
        ],
        ...memberResources(spec),
      };
    });
  },

  /** Every broker registered with the active controller. */
  async initialize(_spec, members, ctx) {
    const { brokers, controller } = await withAdmin(members, ctx, (a) => a.describeCluster());
    if (controller === null || controller < 0) return 'waiting for the controllers to elect a leader';
    const missing = members.filter((m) => !brokers.some((b) => b.nodeId === memberIndex(m.spec))).map((m) => m.spec.name);
    return missing.length > 0 ? `waiting for ${missing.join(', ')} to register with the active controller` : undefined;
  },

  /** New brokers take part once registered; moving partitions onto them is the user's (kafka-reassign-partitions). */
  async join(spec, members, ctx) {
    return kafka.initialize(spec, members, ctx);
  },

  /**
   * Before a scale in: every replica on a leaving broker moves to a staying
   * one (kafka-reassign-partitions.sh in a staying member), one
   * reassignment at a time; done once no partition has a replica there.
   */
  async leave(_spec, members, leaving, ctx) {
    const staying = members.filter((m) => !leaving.includes(m));
    const gone = new Set(leaving.map((m) => memberIndex(m.spec)));
    const what = `moving partitions off ${leaving.map((m) => m.spec.name).join(', ')}`;
    return reassign(staying, ctx, what, (partitions) => {
      // Each stranded replica goes to the staying broker with the fewest replicas that the partition lacks.
      const load = replicaCounts(
        partitions,
        staying.map((m) => memberIndex(m.spec)),
      );
      return partitions
        .filter((p) => p.replicas.some((r) => gone.has(r)))
        .map((p) => {
          const replicas = [...p.replicas];
          for (const [i, r] of replicas.entries()) {
            if (!gone.has(r)) continue;
            const to = [...load.entries()].filter(([b]) => !replicas.includes(b)).sort((a, b) => a[1] - b[1] || a[0] - b[0])[0]?.[0];
            if (to === undefined) throw new Error(`${p.topic}/${p.partition} has more replicas than the brokers that stay`);
            load.set(to, load.get(to)! + 1);
            replicas[i] = to;
          }
          return { ...p, replicas };
        });
    });
  },

  /** After a scale out with --rebalance: replicas move onto the new brokers until every broker holds a fair share (balancePlan). */
  async rebalance(_spec, members, ctx) {
    const brokers = members.map((m) => memberIndex(m.spec));
    return reassign(members, ctx, 'moving partitions onto every broker evenly', (partitions) => balancePlan(partitions, brokers));
  },

  async notReady(_spec, m, ctx) {
    try {
      const { brokers, controller } = await withAdmin([m], ctx, (a) => a.describeCluster());
      if (controller === null || controller < 0) return 'no active controller';
      return brokers.some((b) => b.nodeId === memberIndex(m.spec)) ? undefined : 'not registered with the active controller';
    } catch (err) {
      return errorMessage(err);
    }
  },

  async roles(spec, members, ctx) {
    const controllers = controllersOf(spec, ctx.state);
    const active = await withAdmin(members, ctx, (a) => a.describeCluster())
      .then((c) => c.controller)
      .catch(() => undefined);
    return Object.fromEntries(
      members.map((m) => {
        const i = memberIndex(m.spec);
        const role = i === active ? 'broker, active controller' : i < controllers ? 'broker, controller' : 'broker';
        return [m.spec.name, { role } satisfies MemberRole];
      }),
    );
  },

  /**
   * One broker at a time, once no partition is under-replicated: brokers
   * only first, then the controllers, the active one last (one election).
   */
  async rolloutStep(spec, members, pending, ctx): Promise<RolloutStep> {
    const { urp, active } = await withAdmin(members, ctx, async (a) => ({
      urp: await underReplicated(a),
      active: (await a.describeCluster()).controller,
    }));
    if (urp.length > 0) return { wait: `waiting for ${urp.length} under-replicated partitions (${urp.slice(0, 3).join(', ')}…) to catch up` };
    const controllers = controllersOf(spec, ctx.state);
    const order = (m: PlacedMember) => {
      const i = memberIndex(m.spec);
      return (i === active ? 2_000 : i < controllers ? 1_000 : 0) + i;
    };
    return { restart: [...pending].sort((a, b) => order(a) - order(b))[0].spec.name };
  },
};

/**
 * The member's start script (POSIX sh, as the image's appuser): the storage
 * is formatted with the cluster id once, with the admin's SCRAM credentials;
 * then the broker starts with firecampd's settings and the SASL login.
 */
function startScript(clusterId: string, me: string, metricsFlag: string): string {
  return `#!/bin/sh
# Written by firecampd: starts this Kafka member.
set -eu
# Its own name first: the controllers bind and the broker advertises by it.
until awk -v n="${me}" '$2 == n { found = 1 } END { exit !found }' /etc/hosts; do echo "firecampd: waiting for the name ${me}" >&2; sleep 1; done
CONFIG=${DATA}/kafka.properties
cat ${DATA}/firecampd/server.properties ${DATA}/firecampd/jaas.properties > "$CONFIG"
chmod 600 "$CONFIG"
if [ ! -f ${DATA}/kafka/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t ${clusterId} -c "$CONFIG" \\
    --add-scram "SCRAM-SHA-512=[name=${KAFKA_ADMIN},password=$(cat ${DATA}/.admin-password)]"
fi
# The broker alone loads the metrics agent: tools run in this container would fight over its port.
export KAFKA_OPTS="\${KAFKA_OPTS:-} ${metricsFlag}"
exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG"
`;
}
