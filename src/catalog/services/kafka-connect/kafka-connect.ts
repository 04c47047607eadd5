// Kafka Connect in distributed mode: workers of one group against a Kafka
// service of this cluster (`--kafka NAME`), which keeps their connectors,
// offsets and status in three topics made with its replication factor.
//
// Workers are stateless but for those topics: a member's volume holds only
// its config and secret files, so a worker that moves loses nothing. Workers
// log in to Kafka as its SASL/SCRAM admin (the Kafka service's secret,
// borrowed by the agent when it writes the member's files); the REST API on
// port 8083 asks for HTTP basic authentication as `admin` with this
// service's own generated password. `firecampd service connector` passes
// connectors to it (connectors.ts).
//
// A rollout restarts one worker at a time, the next once the restarted one
// is back in the group (its /health answers healthy).
import { JMX_EXPORTER_PORT, jmxExporter } from '../../jmx-exporter.ts';
import { CONNECT_JMX_RULES } from './jmx-rules.ts';
import type { MemberSpec } from '../../../agent/members.ts';
import { errorMessage } from '../../../errors.ts';
import type { ApiServer } from '../../../api/server.ts';
import type { ControlDb } from '../../../controldb/controldb.ts';
import { connectBackup } from './backup.ts';
import { connectorCommands } from './cli.ts';
import { registerConnectorRoutes } from './connectors.ts';
import type { MemberContext, PlacedMember, RolloutStep, ServiceSpec, ServiceSpecInput, ServiceType } from '../../types.ts';
import { memberResources, trueOrFalse, wholeNumber } from '../../types.ts';
import { KAFKA_ADMIN, KAFKA_PORT, kafka, replicationFactor } from '../kafka/kafka.ts';

export const CONNECT_PORT = 8083;
/** The user of the REST API's basic authentication. */
export const CONNECT_ADMIN = 'admin';
/** Workers run the Kafka image's connect-distributed.sh, as its appuser. */
const CONNECT_USER = '1000:1000';
const DATA = '/data';
const DEFAULT_HEAP_MIB = 512;
const JSON_CONVERTER = 'org.apache.kafka.connect.json.JsonConverter';
const BASIC_AUTH = 'org.apache.kafka.connect.rest.basic.auth.extension';

/** The basic authentication header of the REST API. */
export const connectAuth = (password: string) => `Basic ${Buffer.from(`${CONNECT_ADMIN}:${password}`).toString('base64')}`;

/** The Kafka service's brokers, by their DNS names: every one a bootstrap server. */
function bootstrapServers(k: ServiceSpec, domain: string): string {
  return Array.from({ length: k.replicas }, (_, i) => `${k.name}-${i}.${k.name}.${domain}:${KAFKA_PORT}`).join(',');
}

const scram = (prefix: string) => [
  `${prefix}security.protocol=SASL_PLAINTEXT`,
  `${prefix}sasl.mechanism=SCRAM-SHA-512`,
  `${prefix}sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="${KAFKA_ADMIN}" password="{{kafka}}";`,
];

/**
 * A request to a worker's REST API with the admin's login: the status and the
 * body, parsed where it is JSON ({"message": text} where it is not: a plain error page).
 */
export async function connectRequest(
  host: string,
  password: string,
  method: string,
  path: string,
  o: { body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://${host}:${CONNECT_PORT}${path}`, {
    method,
    headers: { authorization: connectAuth(password), ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
    signal: AbortSignal.timeout(o.timeoutMs ?? 5000),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
  } catch {
    return { status: res.status, body: { message: text.slice(0, 200) } };
  }
}

export const kafkaConnect: ServiceType = {
  name: 'kafka-connect',
  title: 'Kafka Connect',
  image: kafka.image,
  defaults: { replicas: 2, volumeSizeMiB: 64 },
  jvm: true,
  routes: (api: ApiServer, db: ControlDb) => registerConnectorRoutes(api, db),
  backup: connectBackup,
  commands: [{ command: 'connector', describe: 'the connectors of a Kafka Connect service: put, get, delete', builder: connectorCommands }],
  secrets: ['admin'],
  needs: ['kafka'],
  settings: {
    'key.converter': { describe: "the converter of records' keys for connectors that name none", default: JSON_CONVERTER, check: className },
    'value.converter': { describe: "the converter of records' values for connectors that name none", default: JSON_CONVERTER, check: className },
    'key.converter.schemas.enable': { describe: 'JSON keys carry their schema', default: 'true', check: trueOrFalse },
    'value.converter.schemas.enable': { describe: 'JSON values carry their schema', default: 'true', check: trueOrFalse },
    'offset.flush.interval.ms': { describe: "how often source tasks' offsets are committed", default: '10000', check: (v) => wholeNumber(v, 100, 86_400_000) },
  },

  describeSecret: () => ({ user: CONNECT_ADMIN, describe: 'the REST API login (HTTP basic authentication) on port 8083' }),

  normalize(spec: ServiceSpecInput): ServiceSpec {
    return { ...spec, replicas: spec.replicas ?? kafkaConnect.defaults.replicas };
  },

  needsStaticIps: () => undefined,
  cannotScale: () => undefined,
  group: () => 0,

  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const k = ctx.needed.kafka;
    if (!k) throw new Error(`the Kafka service ${spec.needs?.kafka ?? '(none)'} that ${spec.name} needs is gone`);
    const rf = replicationFactor(k);
    const heap = spec.heapMiB ?? DEFAULT_HEAP_MIB;
    const setting = (key: string) => spec.settings?.[key] ?? kafkaConnect.settings[key].default!;
    return Array.from({ length: spec.replicas }, (_, i) => {
      const name = `${spec.name}-${i}`;
      const dnsName = `${name}.${spec.name}.${ctx.domain}`;
      const ip = ctx.ips[i];
      const conf = [
        '# Written by firecampd; change settings with "firecampd service config".',
        `bootstrap.servers=${bootstrapServers(k, ctx.domain)}`,
        `group.id=${spec.name}`,
        ...['config', 'offset', 'status'].flatMap((t) => [`${t}.storage.topic=${spec.name}-${t}s`, `${t}.storage.replication.factor=${rf}`]),
        ...['key.converter', 'value.converter', 'key.converter.schemas.enable', 'value.converter.schemas.enable', 'offset.flush.interval.ms'].map(
          (key) => `${key}=${setting(key)}`,
        ),
        `listeners=http://${ip ?? '0.0.0.0'}:${CONNECT_PORT}`,
        // Workers forward requests to the group's leader by these.
        `rest.advertised.host.name=${dnsName}`,
        `rest.advertised.port=${CONNECT_PORT}`,
        `rest.extension.classes=${BASIC_AUTH}.BasicAuthSecurityRestExtension`,
        ...(spec.config ? [spec.config] : []),
      ].join('\n');
      const jmx = jmxExporter(ip, DATA, CONNECT_JMX_RULES);
      return {
        service: spec.name,
        name,
        image: spec.image ?? kafkaConnect.image,
        command: ['sh', `${DATA}/firecampd/start.sh`],
        user: CONNECT_USER,
        env: {
          KAFKA_HEAP_OPTS: `-Xmx${heap}m -Xms${heap}m`,
          KAFKA_OPTS: `-Djava.security.auth.login.config=${DATA}/firecampd/rest-jaas.conf`,
        },
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? kafkaConnect.defaults.volumeSizeMiB, mountPath: DATA },
        dnsName,
        ...(ip ? { ip } : {}),
        port: CONNECT_PORT,
        ports: [CONNECT_PORT, JMX_EXPORTER_PORT],
        metrics: jmx.metrics,
        configFiles: [
          jmx.configFile,
          { path: 'firecampd/worker.properties', content: conf + '\n' },
          {
            path: 'firecampd/rest-jaas.conf',
            content: `KafkaConnect {\n  ${BASIC_AUTH}.PropertyFileLoginModule required\n  file="${DATA}/firecampd/rest-users.properties";\n};\n`,
          },
          { path: 'firecampd/start.sh', content: startScript(dnsName, jmx.jvmFlag), mode: 0o755 },
        ],
        secretFiles: [
          // The worker's own login to Kafka, and its connectors' producers, consumers and admin clients.
          { path: 'firecampd/kafka-login.properties', template: ['', 'producer.', 'consumer.', 'admin.'].flatMap(scram).join('\n') + '\n' },
          { path: 'firecampd/rest-users.properties', template: `${CONNECT_ADMIN}: {{admin}}\n` },
        ],
        borrowedSecrets: [{ as: 'kafka', service: k.name, secret: 'admin' }],
        ...memberResources(spec),
      };
    });
  },

  /** Every worker healthy: each has joined the group and read its config topic. */
  async initialize(spec, members, ctx) {
    for (const m of members) {
      const why = await kafkaConnect.notReady(spec, m, ctx);
      if (why) return `waiting for ${m.spec.name}: ${why}`;
    }
    return undefined;
  },

  async notReady(_spec, m, ctx) {
    try {
      const { status, body } = await connectRequest(m.host, ctx.secrets.admin ?? '', 'GET', '/health');
      if (status === 200) return undefined;
      const message = (body as { message?: string } | null)?.message;
      return `its REST API answers ${status}${message ? `: ${message}` : ''}`;
    } catch (err) {
      return errorMessage(err);
    }
  },

  /** One worker at a time, in order: the group rebalances its tasks around each restart. */
  rolloutStep(_spec, _members, pending: PlacedMember[]): Promise<RolloutStep> {
    return Promise.resolve({ restart: pending[0].spec.name });
  },
};

function className(v: string): string | undefined {
  return /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+$/.test(v) ? undefined : 'a Java class name, such as org.apache.kafka.connect.storage.StringConverter';
}

/** The worker's start script (POSIX sh, as the image's appuser): its config and Kafka login in one 0600 file, then the worker. */
function startScript(me: string, metricsFlag: string): string {
  return `#!/bin/sh
# Written by firecampd: starts this Kafka Connect worker.
set -eu
# Its own name first: the other workers forward requests to it by that name.
until awk -v n="${me}" '$2 == n { found = 1 } END { exit !found }' /etc/hosts; do echo "firecampd: waiting for the name ${me}" >&2; sleep 1; done
CONFIG=${DATA}/connect.properties
umask 077
cat ${DATA}/firecampd/worker.properties ${DATA}/firecampd/kafka-login.properties > "$CONFIG"
# The worker alone loads the metrics agent: tools run in this container would fight over its port.
export KAFKA_OPTS="\${KAFKA_OPTS:-} ${metricsFlag}"
exec /opt/kafka/bin/connect-distributed.sh "$CONFIG"
`;
}
