// The stand-in for the Docker official image cassandra:5.0, built by `npm run
// images` (see scripts/image-recipe.ts): Apache Cassandra's jars from Maven
// Central on Debian's OpenJDK 17 (scripts/jre.ts; upstream has Temurin 17
// too), tagged with the exact version. Laid out as upstream: CASSANDRA_HOME
// /opt/cassandra (bin/ on PATH, lib/ the jars; conf → /etc/cassandra, data →
// /var/lib/cassandra, logs → /var/log/cassandra), CASSANDRA_CONF
// /etc/cassandra, data in /var/lib/cassandra (data/, commitlog/,
// saved_caches/, hints/, made by Cassandra on its first start), logs in
// /var/log/cassandra, each owned by user cassandra (uid and gid 999) and, as
// upstream, open to any uid (mode 1777), JAVA_HOME /opt/java/openjdk; ports
// 7000 (internode), 9042 (CQL) and 7199 (JMX, on 127.0.0.1 only). What a
// module may rely on: `cassandra -f` (the default CMD; the JVM replaces the
// shell, so signals reach it) with upstream's variables MAX_HEAP_SIZE (-Xms
// and -Xmx; upstream's formula when unset), HEAP_NEWSIZE (taken and, as
// upstream does under G1, not used), JVM_OPTS and JVM_EXTRA_OPTS (more java
// flags), CASSANDRA_CONF, plus JMX_PORT; the flags of
// $CASSANDRA_CONF/jvm-server.options and jvm17-server.options, one a line as
// upstream; `cassandra -v`; `nodetool [-h HOST] [-p PORT] [-u USER -pw
// PASSWORD] COMMAND…` (status, info, drain, decommission, cleanup,
// describecluster, version, any other of Cassandra's NodeTool; the port is
// JMX_PORT unless given; the flags of jvm17-clients.options); and in
// /etc/cassandra a cassandra.yaml for one node (seed 127.0.0.1,
// GossipingPropertyFileSnitch, directories under /var/lib/cassandra),
// cassandra-rackdc.properties (dc1, rack1), logback.xml (the server: the
// console from INFO), logback-tools.xml (nodetool: WARN to stderr) and an
// empty triggers/, all replaceable (or copied to a directory of one's own
// that CASSANDRA_CONF names). Not there: upstream's entrypoint (no cassandra.yaml or
// cassandra-rackdc.properties made from CASSANDRA_* variables: write them
// yourself), gosu (the image runs as root unless told otherwise; it works as
// --user 999:999), cqlsh (Python in upstream: use a CQL driver), the
// background mode of bin/cassandra, remote JMX, the other bin/ and tools/bin/
// programs, Sigar's native library (Cassandra logs that it does without it)
// and jemalloc.
import type { ImageRecipe } from '../../../../scripts/image-recipe.ts';
import { JRE_17 } from '../../../../scripts/jre.ts';
import { cassandra as cassandraType } from './cassandra.ts';

/** The newest 5.0 release Maven Central serves with all it depends on (5.0.8 resolves too). */
const VERSION = '5.0.9';
const HOME = '/opt/cassandra';
const CONF = '/etc/cassandra';

/**
 * Where the scripts find things (the configuration directory leads the class path, as upstream), and the flags
 * of a JVM options file: each line that starts with - (a flag, or a flag and its value split at a space).
 */
const PRELUDE = `CASSANDRA_HOME=$(cd "$(dirname "$0")/.." && pwd)
CASSANDRA_CONF=\${CASSANDRA_CONF:-$CASSANDRA_HOME/conf}
JAVA=\${JAVA_HOME:+$JAVA_HOME/bin/}java
CLASSPATH="$CASSANDRA_CONF:$CASSANDRA_HOME/lib/*"
options() {
  [ ! -f "$1" ] || sed -n 's/^[[:space:]]*\\(-.*\\)$/\\1/p' "$1"
}
`;

const cassandra = `#!/bin/sh
# firecampd's cassandra for the Cassandra stand-in: the server in the foreground, the JVM in place of this shell.
#   cassandra -f [-R] [-p PIDFILE] [-D NAME=VALUE]...   (-R is taken and ignored; there is no background mode)
#   cassandra -v                                        the version
# MAX_HEAP_SIZE: -Xms and -Xmx (unset: the larger of half the memory up to 1024M and a quarter of it up to 8G);
# HEAP_NEWSIZE: taken and not used (it is -Xmn for CMS, which Java 17 no longer has; G1 sizes its young
# generation itself); JVM_OPTS, JVM_EXTRA_OPTS: more java flags, after those of $CASSANDRA_CONF/jvm-server.options
# and jvm17-server.options (each line that starts with - is a flag; the last -Xmx given wins); JMX_PORT: JMX on
# 127.0.0.1 (default 7199); CASSANDRA_LOG_DIR (default $CASSANDRA_HOME/logs).
${PRELUDE}CASSANDRA_LOG_DIR=\${CASSANDRA_LOG_DIR:-$CASSANDRA_HOME/logs}
usage() {
  echo "usage: cassandra -f [-R] [-p PIDFILE] [-D NAME=VALUE]... | cassandra -v" >&2
  exit 1
}
# The arguments are turned in place into java's -D flags, so that a value may hold spaces.
foreground= pidfile=
n=$#
while [ "$n" -gt 0 ]; do
  arg=$1
  shift
  n=$((n - 1))
  case "$arg" in
  -f) foreground=yes ;;
  -R) ;;
  -p | -D)
    [ "$n" -gt 0 ] || usage
    value=$1
    shift
    n=$((n - 1))
    if [ "$arg" = -p ]; then pidfile=$value; else set -- "$@" "-D$value"; fi
    ;;
  -D*) set -- "$@" "$arg" ;;
  -v) exec "$JAVA" -cp "$CLASSPATH" org.apache.cassandra.tools.GetVersion ;;
  *) usage ;;
  esac
done
if [ -z "$foreground" ]; then
  echo "cassandra: no background mode in this image: run cassandra -f" >&2
  exit 1
fi
if [ -z "$MAX_HEAP_SIZE" ]; then
  mib=$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)
  half=$((mib / 2 > 1024 ? 1024 : mib / 2))
  quarter=$((mib / 4 > 8192 ? 8192 : mib / 4))
  MAX_HEAP_SIZE=$((half > quarter ? half : quarter))M
fi
# jamm measures objects' sizes on the heap (memtables, caches) with the instrumentation its agent gets.
for jar in "$CASSANDRA_HOME"/lib/jamm-*.jar; do jamm=$jar; done
[ -n "$pidfile" ] && echo $$ >"$pidfile"
# The options files' lines and the flag variables are split into words on purpose, and not globbed. Out of heap,
# the JVM exits (upstream kills it): it would be left in no state to serve. CassandraDaemon closes stdout and
# stderr unless cassandra-foreground is set. The configuration is $CASSANDRA_CONF's (cassandra.yaml, logback.xml;
# cassandra-rackdc.properties and triggers/ through the class path); what cassandra.yaml leaves out goes under
# the storage directory. There is no jemalloc here: "-" keeps Cassandra from looking for it, as upstream does when
# it finds none. The -D arguments come last but for the class path, so they win.
set -f
exec "$JAVA" "-Xms$MAX_HEAP_SIZE" "-Xmx$MAX_HEAP_SIZE" \\
  $(options "$CASSANDRA_CONF/jvm-server.options") $(options "$CASSANDRA_CONF/jvm17-server.options") \\
  "-javaagent:$jamm" -XX:+ExitOnOutOfMemoryError \\
  "-Dcassandra.jmx.local.port=\${JMX_PORT:-7199}" -Dcassandra-foreground=yes \\
  "-Dcassandra.config=file://$CASSANDRA_CONF/cassandra.yaml" "-Dlogback.configurationFile=$CASSANDRA_CONF/logback.xml" \\
  "-Dcassandra.storagedir=$CASSANDRA_HOME/data" "-Dcassandra.logdir=$CASSANDRA_LOG_DIR" -Dcassandra.libjemalloc=- \\
  $JVM_OPTS $JVM_EXTRA_OPTS "$@" -cp "$CLASSPATH" org.apache.cassandra.service.CassandraDaemon
`;

const nodetool = `#!/bin/sh
# firecampd's nodetool for the Cassandra stand-in: Cassandra's NodeTool over JMX, arguments passed through:
#   nodetool [-h HOST] [-p PORT] [-u USER -pw PASSWORD] COMMAND [ARGS]...
# The host is 127.0.0.1 unless given, the port JMX_PORT (default 7199). Logs at WARN to stderr
# ($CASSANDRA_CONF/logback-tools.xml).
${PRELUDE}port=
for arg in "$@"; do
  case "$arg" in
  -p | --port | --port=*) port=given ;;
  esac
done
[ -n "$port" ] || set -- -p "\${JMX_PORT:-7199}" "$@"
# A short-lived client: a small heap and the serial collector start fastest. The flags of
# $CASSANDRA_CONF/jvm17-clients.options (one a line, as for the server) are split into words on purpose.
set -f
exec "$JAVA" -Xmx128m -XX:+UseSerialGC $(options "$CASSANDRA_CONF/jvm17-clients.options") \\
  "-Dlogback.configurationFile=$CASSANDRA_CONF/logback-tools.xml" -cp "$CLASSPATH" org.apache.cassandra.tools.NodeTool "$@"
`;

const jvmServerOptions = `# The Cassandra stand-in's java flags for the server, read by bin/cassandra: each line that starts with - is
# one flag (split into words at spaces); the rest is ignored. Flags for Java 17 only are in jvm17-server.options.

# Cassandra checks its invariants with assert; Chronicle's (the audit and full query logs) are too costly.
-ea
-da:net.openhft...
# Thread priorities, which Cassandra lowers for its background work (Linux honours them only for root with
# -XX:ThreadPriorityPolicy=1, which is not set: as upstream).
-XX:+UseThreadPriorities
# Cassandra runs many threads with shallow stacks.
-Xss256k
# The whole heap is touched at the start, so that the first requests do not stall on page faults.
-XX:+AlwaysPreTouch
# The JVM's statistics file in /tmp (for jps, jstat) is written at safepoints, which stall when the disk is busy.
-XX:+PerfDisableSharedMem
# The addresses are IPv4.
-Djava.net.preferIPv4Stack=true
`;

const jvm17ServerOptions = `# The Cassandra stand-in's java flags for the server on Java 17, read by bin/cassandra after jvm-server.options.

# The garbage-first collector, tuned as upstream: objects that survive one young collection are promoted at once
# (Cassandra's are either short-lived or long-lived), references are processed in parallel, 16 MiB regions, a
# pause target below the request timeouts, and old-generation marking late (at 70% of the heap).
-XX:+UseG1GC
-XX:+ParallelRefProcEnabled
-XX:MaxTenuringThreshold=1
-XX:G1HeapRegionSize=16m
-XX:G1RSetUpdatingPauseTimePercent=5
-XX:MaxGCPauseMillis=300
-XX:InitiatingHeapOccupancyPercent=70

# Java 17 closes the JDK's internals to the class path, and Cassandra and its libraries reach into them.
# Without the first four Cassandra does not start (each was tried): it frees direct and mapped buffers through
# their cleaners (sun.nio.ch, jdk.internal.ref), reads file descriptors' numbers (java.io) and runs JMX on an RMI
# registry of its own (sun.rmi.registry). The others are upstream's too, for what runs later: the rest of the
# JMX server's RMI (sun.rmi.server, com.sun.jmx.remote.internal.rmi); Unsafe and off-heap memory
# (jdk.internal.misc, sun.misc: Netty, Chronicle's audit and full query logs, the driver that tools use); jamm,
# which measures memtables and caches by walking objects into the JDK's classes (java.lang, java.lang.reflect,
# java.util, the loaders, modules, reflection, numbers, jars and management beans of the rest); SJK's and the
# attach API's attaching to this JVM (nodetool sjk). Upstream's javac exports are left out (nothing here uses
# javac: Java UDFs are compiled with ECJ), and so are exports of packages Java 17 exports anyway (java.sql,
# java.lang.ref).
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
--add-opens=java.base/java.io=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
--add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED
--add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
--add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
--add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED
--add-opens=java.base/java.lang=ALL-UNNAMED
--add-opens=java.base/java.lang.reflect=ALL-UNNAMED
--add-opens=java.base/java.util=ALL-UNNAMED
--add-opens=java.base/java.lang.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.loader=ALL-UNNAMED
--add-opens=java.base/jdk.internal.module=ALL-UNNAMED
--add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED
--add-opens=java.base/jdk.internal.math=ALL-UNNAMED
--add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED
--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED
--add-exports=jdk.attach/sun.tools.attach=ALL-UNNAMED
-Djdk.attach.allowAttachSelf=true

# Netty: direct buffers through Unsafe (its reflection needs the flag on Java 9 and later), and its allocator's
# caches as before Netty 4.1.75 (a thread cache for every thread, 16 MiB chunks), which Cassandra is tuned for.
-Dio.netty.tryReflectionSetAccessible=true
-Dio.netty.allocator.useCacheForAllThreads=true
-Dio.netty.allocator.maxOrder=11
`;

const jvm17ClientsOptions = `# The Cassandra stand-in's java flags for nodetool on Java 17, read by bin/nodetool: each line that starts with -
# is one flag. Without these two nodetool does not start (each was tried): Cassandra's FileUtils, which it loads,
# looks up the cleaners of direct buffers when its class is initialised.
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED
--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
`;

const cassandraYaml = `# The Cassandra stand-in's default: one node, its own seed, internode traffic on 127.0.0.1:7000, CQL on every
# address (port 9042). A member's configuration replaces this file. Cassandra 5.0 refuses a setting it does not
# know ("Invalid yaml. Please remove properties [...]") and does not start without commitlog_sync (with
# commitlog_sync_period when periodic), partitioner, endpoint_snitch and seed_provider; the directories would
# default to subdirectories of -Dcassandra.storagedir (/opt/cassandra/data, which is /var/lib/cassandra). The rest
# is left to Cassandra's defaults.
cluster_name: Test Cluster
num_tokens: 16
allocate_tokens_for_local_replication_factor: 3
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: GossipingPropertyFileSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:7000"
listen_address: 127.0.0.1
storage_port: 7000
rpc_address: 0.0.0.0
broadcast_rpc_address: 127.0.0.1
native_transport_port: 9042
data_file_directories:
  - /var/lib/cassandra/data
commitlog_directory: /var/lib/cassandra/commitlog
saved_caches_directory: /var/lib/cassandra/saved_caches
hints_directory: /var/lib/cassandra/hints
commitlog_sync: periodic
commitlog_sync_period: 10000ms
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
role_manager: CassandraRoleManager
network_authorizer: AllowAllNetworkAuthorizer
# Upstream's default: SSTables and messages that Cassandra 4 reads too, so that a 4.x cluster can be upgraded
# node by node (NONE, for a cluster that starts on 5.0, enables 5.0's formats).
storage_compatibility_mode: CASSANDRA_4
`;

const rackdc = `# The Cassandra stand-in's datacenter and rack of this node, for GossipingPropertyFileSnitch.
dc=dc1
rack=rack1
`;

const logback = `<!-- The Cassandra stand-in's logging for the server: everything to the console, from INFO. -->
<configuration scan="false">
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="CONSOLE"/>
  </root>
</configuration>
`;

const logbackTools = `<!-- The Cassandra stand-in's logging for nodetool: warnings and errors to stderr, so that stdout is the answer. -->
<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder>
      <pattern>%-5level %date{ISO8601} %msg%n</pattern>
    </encoder>
  </appender>
  <root level="WARN">
    <appender-ref ref="STDERR"/>
  </root>
</configuration>
`;

export const image: ImageRecipe = {
  image: cassandraType.image,
  tags: [`cassandra:${VERSION}`],
  packages: [...JRE_17.packages],
  // glibc's stubs for what it has merged into libc.so.6: Netty's epoll transport (the native transport and
  // internode messaging) and its BoringSSL library still link libdl, librt and libpthread, and zstd-jni
  // libpthread; these libraries come unpacked from their jars at run time, where the builder's ldd cannot see them.
  programs: ['/lib/x86_64-linux-gnu/libdl.so.2', '/lib/x86_64-linux-gnu/librt.so.1', '/lib/x86_64-linux-gnu/libpthread.so.0'],
  trees: [...JRE_17.trees],
  maven: [
    {
      dir: `${HOME}/lib`,
      // The server, nodetool and everything they use: cassandra-all's POM lists it all, nothing optional.
      artifacts: [`org.apache.cassandra:cassandra-all:${VERSION}`],
    },
  ],
  links: {
    ...JRE_17.links,
    // As upstream: the distribution's conf/, data/ and logs/ are the configuration, data and log directories.
    [`${HOME}/conf`]: CONF,
    [`${HOME}/data`]: '/var/lib/cassandra',
    [`${HOME}/logs`]: '/var/log/cassandra',
  },
  groups: [{ name: 'cassandra', gid: 999 }],
  users: [{ name: 'cassandra', uid: 999, gid: 999, home: '/home/cassandra' }],
  dirs: [
    { path: HOME },
    // Owned by cassandra and, as upstream, writable by any uid (a container run with --user).
    { path: CONF, owner: 'cassandra', mode: 0o1777 },
    { path: '/var/lib/cassandra', owner: 'cassandra', mode: 0o1777 },
    { path: '/var/log/cassandra', owner: 'cassandra', mode: 0o1777 },
    // Where Cassandra looks for trigger classes (the configuration directory's triggers/, on the class path): it
    // warns every minute while the directory is missing.
    { path: `${CONF}/triggers`, owner: 'cassandra' },
    // nodetool keeps its history in ~/.cassandra.
    { path: '/home/cassandra', owner: 'cassandra' },
  ],
  files: [
    { path: `${HOME}/bin/cassandra`, content: cassandra, mode: 0o755 },
    { path: `${HOME}/bin/nodetool`, content: nodetool, mode: 0o755 },
    { path: `${CONF}/cassandra.yaml`, content: cassandraYaml, owner: 'cassandra' },
    { path: `${CONF}/cassandra-rackdc.properties`, content: rackdc, owner: 'cassandra' },
    { path: `${CONF}/jvm-server.options`, content: jvmServerOptions, owner: 'cassandra' },
    { path: `${CONF}/jvm17-server.options`, content: jvm17ServerOptions, owner: 'cassandra' },
    { path: `${CONF}/jvm17-clients.options`, content: jvm17ClientsOptions, owner: 'cassandra' },
    { path: `${CONF}/logback.xml`, content: logback, owner: 'cassandra' },
    { path: `${CONF}/logback-tools.xml`, content: logbackTools, owner: 'cassandra' },
  ],
  env: {
    ...JRE_17.env,
    PATH: `${HOME}/bin:${JRE_17.env.PATH}`,
    CASSANDRA_HOME: HOME,
    CASSANDRA_CONF: CONF,
  },
  cmd: ['cassandra', '-f'],
};
