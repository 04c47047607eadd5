// The stand-in for the Docker official image zookeeper:3.9, built by `npm run
// images` (see scripts/image-recipe.ts): Apache ZooKeeper's jars from Maven
// Central on Debian's OpenJDK 17 (scripts/jre.ts), tagged with the exact
// version too. Laid out as upstream: the distribution in
// /apache-zookeeper-<version>-bin (bin/ on PATH, lib/ the jars), ZOOCFGDIR and
// ZOO_CONF_DIR /conf, ZOO_DATA_DIR /data, ZOO_DATA_LOG_DIR /datalog,
// ZOO_LOG_DIR /logs, each owned by user zookeeper (uid and gid 1000), JAVA_HOME
// /opt/java/openjdk, nc (busybox's) for the four-letter words. What a module
// may rely on: `zkServer.sh start-foreground [CONFIG_FILE]` (the default CMD;
// the JVM replaces the shell, so signals reach it), `zkServer.sh version`,
// `zkCli.sh [-server HOST:PORT] [COMMAND…]`, with upstream's variables
// ZK_SERVER_HEAP (MiB, -Xmx), JVMFLAGS, SERVER_JVMFLAGS and CLIENT_JVMFLAGS;
// /conf/zoo.cfg (standalone, client port 2181, the four-letter words ruok,
// srvr, mntr, conf and stat) and /conf/logback.xml (the console), both
// replaceable. Not there: upstream's entrypoint (no zoo.cfg or myid made from
// ZOO_* variables: write them yourself), gosu (the image runs as root unless
// told otherwise; it works as --user 1000:1000), the other zkServer.sh
// commands (start, stop, status: use `echo srvr | nc`), the other bin/ tools.
import type { ImageRecipe } from '../../../../scripts/image-recipe.ts';
import { JRE_17 } from '../../../../scripts/jre.ts';
import { zookeeper } from './zookeeper.ts';

/** The newest 3.9 release Maven Central serves with all it depends on. */
const VERSION = '3.9.5';
const HOME = `/apache-zookeeper-${VERSION}-bin`;

/** Where the scripts find things: the configuration directory is on the class path (logback.xml), as upstream. */
const PRELUDE = `ZOOBINDIR=$(cd "$(dirname "$0")" && pwd)
ZOOKEEPER_PREFIX=\${ZOOBINDIR%/bin}
ZOOCFGDIR=\${ZOOCFGDIR:-$ZOOKEEPER_PREFIX/conf}
ZOO_LOG_DIR=\${ZOO_LOG_DIR:-$ZOOKEEPER_PREFIX/logs}
JAVA=\${JAVA_HOME:+$JAVA_HOME/bin/}java
CLASSPATH="$ZOOCFGDIR:$ZOOKEEPER_PREFIX/lib/*\${CLASSPATH:+:$CLASSPATH}"
`;

const zkServer = `#!/bin/sh
# firecampd's zkServer.sh for the ZooKeeper stand-in: only what a container needs.
#   zkServer.sh start-foreground [CONFIG_FILE]   a bare name is looked up in $ZOOCFGDIR (default zoo.cfg)
#   zkServer.sh version
# ZK_SERVER_HEAP: the heap in MiB (default 1000); JVMFLAGS, SERVER_JVMFLAGS: more java flags.
${PRELUDE}
case "$1" in
start-foreground)
  case "\${2:-zoo.cfg}" in
  */*) ZOOCFG=$2 ;;
  *) ZOOCFG=$ZOOCFGDIR/\${2:-zoo.cfg} ;;
  esac
  if [ ! -f "$ZOOCFG" ]; then
    echo "zkServer.sh: no configuration file $ZOOCFG" >&2
    exit 1
  fi
  # The flag variables are split into words on purpose.
  exec "$JAVA" "-Dzookeeper.log.dir=$ZOO_LOG_DIR" "-Xmx\${ZK_SERVER_HEAP:-1000}m" $JVMFLAGS $SERVER_JVMFLAGS \\
    -cp "$CLASSPATH" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZOOCFG"
  ;;
version)
  exec "$JAVA" -cp "$CLASSPATH" org.apache.zookeeper.version.VersionInfoMain
  ;;
*)
  echo "usage: zkServer.sh start-foreground [CONFIG_FILE] | version" >&2
  exit 1
  ;;
esac
`;

const zkCli = `#!/bin/sh
# firecampd's zkCli.sh for the ZooKeeper stand-in: the command-line client, arguments passed through
# (zkCli.sh -server HOST:PORT COMMAND ARGS…). Logs at WARN unless CLIENT_JVMFLAGS or JVMFLAGS say otherwise.
${PRELUDE}
exec "$JAVA" "-Dzookeeper.log.dir=$ZOO_LOG_DIR" -Dzookeeper.console.threshold=WARN $CLIENT_JVMFLAGS $JVMFLAGS \\
  -cp "$CLASSPATH" org.apache.zookeeper.ZooKeeperMain "$@"
`;

const zooCfg = `# The ZooKeeper stand-in's default: one server on its own. A member's configuration replaces this file,
# or is given to zkServer.sh start-foreground.
tickTime=2000
initLimit=5
syncLimit=2
dataDir=/data
dataLogDir=/datalog
clientPort=2181
maxClientCnxns=60
autopurge.snapRetainCount=3
autopurge.purgeInterval=0
standaloneEnabled=true
admin.enableServer=true
4lw.commands.whitelist=ruok,srvr,mntr,conf,stat
`;

const logback = `<!-- The ZooKeeper stand-in's logging: everything to the console, from INFO
     (-Dzookeeper.console.threshold=LEVEL to change it). -->
<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%d{ISO8601} %-5level [myid:%X{myid}] [%thread] %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="\${zookeeper.console.threshold:-INFO}">
    <appender-ref ref="CONSOLE"/>
  </root>
</configuration>
`;

export const image: ImageRecipe = {
  image: zookeeper.image,
  tags: [`zookeeper:${VERSION}`],
  packages: [...JRE_17.packages],
  // JLine's own native library (unpacked from its jar when zkCli.sh starts) needs libutil; without it zkCli
  // warns and falls back to a dumb terminal.
  programs: ['/lib/x86_64-linux-gnu/libutil.so.1'],
  trees: [...JRE_17.trees],
  maven: [
    {
      dir: `${HOME}/lib`,
      // The server and what its binary distribution adds to it: logback (logging), commons-cli (zkCli's
      // commands), Jetty and Jackson (the admin server on 8080), Dropwizard metrics (the server's summaries),
      // snappy (snapshot compression), JLine (zkCli's prompt). Versions as in ZooKeeper's parent POM.
      artifacts: [
        `org.apache.zookeeper:zookeeper:${VERSION}`,
        'ch.qos.logback:logback-classic:1.3.15',
        'commons-cli:commons-cli:1.5.0',
        'org.eclipse.jetty:jetty-server:9.4.58.v20250814',
        'org.eclipse.jetty:jetty-servlet:9.4.58.v20250814',
        'com.fasterxml.jackson.core:jackson-databind:2.15.2',
        'io.dropwizard.metrics:metrics-core:4.1.12.1',
        'org.xerial.snappy:snappy-java:1.1.10.5',
        'org.jline:jline:3.25.1',
        // The Prometheus metrics provider (metricsProvider.className), part of upstream's lib/ too. Maven Central here
        // serves it up to 3.9.4: that one, whose interface
        // with the server is the same in 3.9.5.
        'org.apache.zookeeper:zookeeper-prometheus-metrics:3.9.4',
      ],
    },
  ],
  links: { ...JRE_17.links },
  groups: [{ name: 'zookeeper', gid: 1000 }],
  users: [{ name: 'zookeeper', uid: 1000, gid: 1000, home: '/home/zookeeper' }],
  dirs: [
    { path: HOME, owner: 'zookeeper' },
    { path: '/conf', owner: 'zookeeper' },
    { path: '/data', owner: 'zookeeper' },
    { path: '/datalog', owner: 'zookeeper' },
    { path: '/logs', owner: 'zookeeper' },
  ],
  files: [
    { path: `${HOME}/bin/zkServer.sh`, content: zkServer, mode: 0o755, owner: 'zookeeper' },
    { path: `${HOME}/bin/zkCli.sh`, content: zkCli, mode: 0o755, owner: 'zookeeper' },
    { path: '/conf/zoo.cfg', content: zooCfg, owner: 'zookeeper' },
    { path: '/conf/logback.xml', content: logback, owner: 'zookeeper' },
  ],
  env: {
    ...JRE_17.env,
    PATH: `${JRE_17.env.PATH}:${HOME}/bin`,
    ZOO_CONF_DIR: '/conf',
    ZOO_DATA_DIR: '/data',
    ZOO_DATA_LOG_DIR: '/datalog',
    ZOO_LOG_DIR: '/logs',
    ZOOCFGDIR: '/conf',
  },
  workdir: HOME,
  cmd: ['zkServer.sh', 'start-foreground'],
};
