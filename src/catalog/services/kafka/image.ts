// The stand-in for the Apache Kafka image apache/kafka:4.1.1, built by `npm run
// images` (see scripts/image-recipe.ts): Kafka's jars from Maven Central on
// Debian's OpenJDK 17 (scripts/jre.ts; upstream has Temurin 21, and Kafka 4
// needs 17 or later). Laid out as upstream: /opt/kafka/{bin,config,libs,logs},
// user appuser (uid and gid 1000) that the image runs as, owning /opt/kafka and
// /var/lib/kafka/data (log.dirs of the default configuration), JAVA_HOME
// /opt/java/openjdk. What a module may rely on: kafka-storage.sh,
// kafka-server-start.sh CONFIG [--override K=V…], kafka-topics.sh,
// kafka-metadata-quorum.sh, kafka-reassign-partitions.sh, kafka-configs.sh,
// kafka-features.sh, kafka-broker-api-versions.sh, the console producer and
// consumer, connect-distributed.sh CONFIG, all with upstream's arguments and
// variables (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS,
// KAFKA_OPTS, CLASSPATH, LOG_DIR); config/server.properties (one KRaft node,
// broker and controller), config/log4j2.yaml (servers: the console from INFO)
// and config/tools-log4j2.yaml (tools: WARN to stderr). The FileStream
// connectors (connect-file) are in libs/, on the class path, where a Connect
// worker finds them without plugin.path, and so is the REST API's basic
// authentication (connect-basic-auth-extension), as in upstream's libs/. The default CMD,
// /etc/kafka/docker/run, formats the storage on the first start (CLUSTER_ID,
// random unless given) and starts that one node. Not there: upstream's
// KAFKA_* variables turned into settings by that script, -daemon, the other
// bin/ tools (kafka-run-class.sh runs any class of libs/), bash.
import type { ImageRecipe } from '../../../../scripts/image-recipe.ts';
import { JRE_17 } from '../../../../scripts/jre.ts';
import { kafka } from './kafka.ts';

/** The upstream image's version: the jars are of the same. */
const VERSION = kafka.image.slice(kafka.image.lastIndexOf(':') + 1);
/** The log4j 2 of Kafka's own dependencies; Kafka logs through SLF4J 1.7, so the binding is log4j-slf4j-impl. */
const LOG4J = '2.24.3';
const HOME = '/opt/kafka';

interface Launcher {
  name: string;
  /** The main class, found in the jars (unzip -l). */
  main: string;
  /** KAFKA_HEAP_OPTS unless set (kafka-run-class.sh's -Xmx256M otherwise). */
  heap?: string;
  /** Logs as a server (config/log4j2.yaml) rather than as a tool. */
  server?: boolean;
  /** The configuration file is required. */
  config?: string;
}

const LAUNCHERS: Launcher[] = [
  { name: 'kafka-server-start.sh', main: 'kafka.Kafka', heap: '-Xmx1G -Xms1G', server: true, config: 'server.properties [--override property=value]...' },
  {
    name: 'connect-distributed.sh',
    main: 'org.apache.kafka.connect.cli.ConnectDistributed',
    heap: '-Xms256M -Xmx2G',
    server: true,
    config: 'connect-distributed.properties',
  },
  { name: 'kafka-storage.sh', main: 'kafka.tools.StorageTool' },
  { name: 'kafka-topics.sh', main: 'org.apache.kafka.tools.TopicCommand' },
  { name: 'kafka-metadata-quorum.sh', main: 'org.apache.kafka.tools.MetadataQuorumCommand' },
  { name: 'kafka-reassign-partitions.sh', main: 'org.apache.kafka.tools.reassign.ReassignPartitionsCommand' },
  { name: 'kafka-configs.sh', main: 'kafka.admin.ConfigCommand' },
  { name: 'kafka-features.sh', main: 'org.apache.kafka.tools.FeatureCommand' },
  { name: 'kafka-broker-api-versions.sh', main: 'org.apache.kafka.tools.BrokerApiVersionsCommand' },
  { name: 'kafka-console-producer.sh', main: 'org.apache.kafka.tools.ConsoleProducer', heap: '-Xmx512M' },
  { name: 'kafka-console-consumer.sh', main: 'org.apache.kafka.tools.consumer.ConsoleConsumer', heap: '-Xmx512M' },
];

const runClass = `#!/bin/sh
# firecampd's kafka-run-class.sh for the Kafka stand-in: java with the jars of libs/ on the class path.
#   kafka-run-class.sh [-name NAME] [-loggc] CLASS [ARGS...]   (-name and -loggc are taken and ignored; no -daemon)
# KAFKA_HEAP_OPTS (default -Xmx256M), KAFKA_JVM_PERFORMANCE_OPTS (default G1 and headless), KAFKA_LOG4J_OPTS
# (default the tools' logging, config/tools-log4j2.yaml), KAFKA_OPTS, CLASSPATH (before libs/), LOG_DIR (logs/).
base_dir=$(cd "$(dirname "$0")/.." && pwd)
while [ $# -gt 0 ]; do
  case "$1" in
  -name) shift 2 ;;
  -loggc) shift ;;
  -daemon)
    echo "kafka-run-class.sh: no -daemon in this image: run in the foreground" >&2
    exit 1
    ;;
  *) break ;;
  esac
done
if [ $# -lt 1 ]; then
  echo "usage: kafka-run-class.sh [-name NAME] [-loggc] CLASS [ARGS...]" >&2
  exit 1
fi
LOG_DIR=\${LOG_DIR:-$base_dir/logs}
mkdir -p "$LOG_DIR" 2>/dev/null
KAFKA_HEAP_OPTS=\${KAFKA_HEAP_OPTS:--Xmx256M}
KAFKA_JVM_PERFORMANCE_OPTS=\${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
KAFKA_LOG4J_OPTS=\${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base_dir/config/tools-log4j2.yaml}
JAVA=\${JAVA_HOME:+$JAVA_HOME/bin/}java
# The option variables are split into words on purpose.
exec "$JAVA" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS "-Dkafka.logs.dir=$LOG_DIR" $KAFKA_LOG4J_OPTS $KAFKA_OPTS \\
  -cp "\${CLASSPATH:+$CLASSPATH:}$base_dir/libs/*" "$@"
`;

const launcher = (l: Launcher): string =>
  [
    '#!/bin/sh',
    `# firecampd's ${l.name} for the Kafka stand-in: ${l.main} through kafka-run-class.sh.`,
    ...(l.config ? ['if [ $# -lt 1 ]; then', `  echo "usage: ${l.name} ${l.config}" >&2`, '  exit 1', 'fi'] : []),
    'base_dir=$(cd "$(dirname "$0")/.." && pwd)',
    ...(l.heap ? [`export KAFKA_HEAP_OPTS="\${KAFKA_HEAP_OPTS:-${l.heap}}"`] : []),
    ...(l.server ? ['export KAFKA_LOG4J_OPTS="${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$base_dir/config/log4j2.yaml}"'] : []),
    `exec "$base_dir/bin/kafka-run-class.sh" ${l.main} "$@"`,
    '',
  ].join('\n');

const serverProperties = `# The Kafka stand-in's default: one KRaft node, broker and controller, alone in its cluster
# (format its storage with kafka-storage.sh format --standalone). A member's own file replaces it.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=/var/lib/kafka/data
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
`;

const log4j2 = (what: string, level: string, target: string) => `# The Kafka stand-in's logging for ${what}: the console (${target}) from ${level}.
Configuration:
  Appenders:
    Console:
      name: CONSOLE
      target: ${target}
      PatternLayout:
        pattern: "%d{ISO8601} %-5p [%t] %c - %m%n"
  Loggers:
    Root:
      level: ${level}
      AppenderRef:
        - ref: CONSOLE
`;

const run = `#!/bin/sh
# The Kafka stand-in's default command: one broker and controller from /opt/kafka/config/server.properties, its
# storage formatted on the first start (cluster id CLUSTER_ID, a random one unless given). Unlike upstream's
# script, no KAFKA_* variable becomes a setting: a member runs kafka-server-start.sh with its own file.
set -e
config=/opt/kafka/config/server.properties
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  /opt/kafka/bin/kafka-storage.sh format --standalone -t "\${CLUSTER_ID:-$(/opt/kafka/bin/kafka-storage.sh random-uuid)}" -c "$config"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$config"
`;

export const image: ImageRecipe = {
  image: kafka.image,
  packages: [...JRE_17.packages],
  trees: [...JRE_17.trees],
  maven: [
    {
      dir: `${HOME}/libs`,
      // The broker and controller, the tools, the storage tool, Connect with its JSON converter, transforms and
      // FileStream connectors, and log4j 2 under SLF4J (jackson-dataformat-yaml, for the YAML configurations,
      // comes with kafka_2.13).
      artifacts: [
        `org.apache.kafka:kafka_2.13:${VERSION}`,
        `org.apache.kafka:kafka-tools:${VERSION}`,
        `org.apache.kafka:kafka-storage:${VERSION}`,
        `org.apache.kafka:connect-runtime:${VERSION}`,
        `org.apache.kafka:connect-json:${VERSION}`,
        `org.apache.kafka:connect-transforms:${VERSION}`,
        `org.apache.kafka:connect-file:${VERSION}`,
        `org.apache.kafka:connect-basic-auth-extension:${VERSION}`,
        `org.apache.logging.log4j:log4j-core:${LOG4J}`,
        `org.apache.logging.log4j:log4j-slf4j-impl:${LOG4J}`,
      ],
    },
  ],
  links: { ...JRE_17.links },
  groups: [{ name: 'appuser', gid: 1000 }],
  users: [{ name: 'appuser', uid: 1000, gid: 1000, home: '/home/appuser' }],
  dirs: [
    { path: '/home/appuser', owner: 'appuser' },
    { path: HOME, owner: 'appuser' },
    { path: `${HOME}/bin`, owner: 'appuser' },
    { path: `${HOME}/config`, owner: 'appuser' },
    { path: `${HOME}/libs`, owner: 'appuser' },
    { path: `${HOME}/logs`, owner: 'appuser' },
    { path: '/var/lib/kafka', owner: 'appuser' },
    { path: '/var/lib/kafka/data', owner: 'appuser' },
    { path: '/etc/kafka', owner: 'appuser' },
    { path: '/etc/kafka/docker', owner: 'appuser' },
    { path: '/etc/kafka/secrets', owner: 'appuser' },
    { path: '/mnt/shared/config', owner: 'appuser' },
  ],
  files: [
    { path: `${HOME}/bin/kafka-run-class.sh`, content: runClass, mode: 0o755, owner: 'appuser' },
    ...LAUNCHERS.map((l) => ({ path: `${HOME}/bin/${l.name}`, content: launcher(l), mode: 0o755, owner: 'appuser' })),
    { path: `${HOME}/config/server.properties`, content: serverProperties, owner: 'appuser' },
    { path: `${HOME}/config/log4j2.yaml`, content: log4j2('the broker, the controller and Connect', 'INFO', 'SYSTEM_OUT'), owner: 'appuser' },
    { path: `${HOME}/config/tools-log4j2.yaml`, content: log4j2('the tools', 'WARN', 'SYSTEM_ERR'), owner: 'appuser' },
    { path: '/etc/kafka/docker/run', content: run, mode: 0o755, owner: 'appuser' },
  ],
  env: { ...JRE_17.env },
  user: 'appuser',
  cmd: ['/etc/kafka/docker/run'],
};
