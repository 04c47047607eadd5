// The stand-in for the Elasticsearch type's default image, built by `npm run
// images` (see scripts/image-recipe.ts). What runs is OpenSearch 2.19, which
// speaks Elasticsearch's REST API (the 7.10 one it forked from), from its jars
// on Maven Central on Debian's OpenJDK 17 (scripts/jre.ts; upstream bundles
// Temurin 21, and 2.19 is the newest line that runs on 17). The image is
// named after OpenSearch's own, opensearchproject/opensearch:<version>, and
// laid out as it: an image called elasticsearch:… that reads opensearch.yml,
// answers "distribution": "opensearch" and names its settings plugins.* would
// claim to be what it is not, and a module written against this one works
// unchanged against the real OpenSearch image.
//
// Laid out as upstream: /usr/share/opensearch (the working directory, owned
// by user opensearch, uid and gid 1000, whom the image runs as) with bin/
// (on PATH), config/, lib/ (the server's jars), modules/, plugins/ (empty),
// data/ and logs/; JAVA_HOME /usr/share/opensearch/jdk, a link to the JRE.
// What a module may rely on: `opensearch [-Ekey=value…]` (the default CMD;
// java replaces the shell, so signals reach the JVM), which takes the JVM's
// options from config/jvm.options, config/jvm.options.d/*.options and then
// OPENSEARCH_JAVA_OPTS (the heap, e.g. -Xms512m -Xmx512m; 1g unless given), and
// every environment variable named like a setting (two or more dotted
// lower-case words: discovery.type=single-node, cluster.name=…) as one more
// -E setting, as upstream's docker distribution does; config/opensearch.yml
// (cluster.name docker-cluster, network.host 0.0.0.0, as upstream's),
// config/log4j2.properties (the console, from INFO). As upstream, a node
// bound to a non-loopback address enforces the bootstrap checks unless
// discovery.type=single-node: vm.max_map_count 262144 on the host (or
// node.store.allow_mmap: false) and 65535 open files (--ulimit nofile).
//
// Modules (OpenSearch loads each from modules/<name>/: its jars and a
// plugin-descriptor.properties, which only the distribution's zip has, so
// ours are written here, with a plugin-security.policy where the module needs
// more than the core's policy grants): transport-netty4 (HTTP on 9200, the
// transport on 9300: without it a node has neither), analysis-common (the
// analyzers, tokenizers and filters mappings commonly name beyond
// `standard`), lang-painless (scripts in updates, queries and sorts; and
// analysis-common declares itself an extension of it, as upstream). Left out:
// reindex (_reindex, _update_by_query, _delete_by_query), mapper-extras
// (scaled_float, token_count, rank_feature, search_as_you_type), parent-join,
// percolator, geo (geo_shape), ingest-*, lang-expression, lang-mustache
// (search templates), aggs-matrix-stats, rank-eval, repository-url,
// search-pipeline-common, cache-common, systemd and opensearch-dashboards:
// index, bulk, search, cluster health and the cluster settings (allocation
// enable and exclude) are the core's own. The Java security manager is on as
// upstream: the core's policy names codebases by jar file name less the
// version (lucene-core, jna, …), which Maven's names keep. Of the server's
// optional dependencies only log4j-core is taken: spatial4j and jts-core
// serve geo shapes, which need the geo module anyway.
//
// Not there: the security plugin, and so no TLS and no authentication (the
// stand-in is upstream's image run with DISABLE_SECURITY_PLUGIN=true; the
// setting plugins.security.disabled=true given as a variable is dropped, any
// other plugins.security.* setting fails as unknown; the plugin's 2.19 POM and
// zip are not served by Maven Central here); the other plugins of
// upstream's image (k-NN, alerting, ISM, SQL, performance analyzer…);
// upstream's entrypoint script (bin/opensearch reads the variables itself,
// so a command must start with `opensearch`), -d, the keystore and plugin
// tools, bash.
import type { ImageRecipe } from '../../../../scripts/image-recipe.ts';
import { JRE_17 } from '../../../../scripts/jre.ts';
import { ES_EXPORTER_IMAGE, elasticsearch } from './elasticsearch.ts';

/** The newest 2.19 release on Maven Central: 3.x needs Java 21. */
/** The upstream image's version: the jars are of the same. */
const VERSION = elasticsearch.image.slice(elasticsearch.image.lastIndexOf(':') + 1);
/** The log4j 2 OpenSearch's core depends on (log4j-api); the core's POM leaves log4j-core out as optional. */
const LOG4J = '2.25.4';
const HOME = '/usr/share/opensearch';
/** The server's artifact: lib/ has it with its libraries. */
const SERVER = 'org.opensearch:opensearch';

interface Module {
  name: string;
  description: string;
  /** The module's Plugin class, found in its jar (unzip -l). */
  classname: string;
  /** Its jar and what it needs beyond the server (resolved without the server, which lib/ has: see SERVER). */
  artifacts: string[];
  /** Modules whose class loader is its parent (SPI extensions). */
  extends?: string;
  /** Grants beyond the core's policy, for the module's jars. */
  policy?: string[];
}

const MODULES: Module[] = [
  {
    name: 'transport-netty4',
    description: 'HTTP and node-to-node transport on Netty 4',
    classname: 'org.opensearch.transport.Netty4Plugin',
    artifacts: [`org.opensearch.plugin:transport-netty4-client:${VERSION}`],
    policy: [
      // The listen backlog Netty sizes itself from.
      'permission java.io.FilePermission "/proc/sys/net/core/somaxconn", "read";',
      'permission java.net.SocketPermission "*", "accept,connect";',
      // Netty's own threads get a context class loader.
      'permission java.lang.RuntimePermission "*", "setContextClassLoader";',
      'permission java.lang.RuntimePermission "getClassLoader";',
      // Set by Netty's NIO event loop, for an old JDK bug.
      'permission java.util.PropertyPermission "sun.nio.ch.bugLevel", "write";',
    ],
  },
  {
    name: 'lang-painless',
    description: 'The Painless scripting language',
    classname: 'org.opensearch.painless.PainlessPlugin',
    // The SPI jar sits beside it, where the modules that extend Painless find it through their parent loader.
    artifacts: [`org.opensearch.plugin:lang-painless:${VERSION}`],
    policy: [
      // Scripts are compiled to classes in loaders of their own.
      'permission java.lang.RuntimePermission "createClassLoader";',
      'permission java.lang.RuntimePermission "getClassLoader";',
    ],
  },
  {
    name: 'analysis-common',
    description: 'The analyzers, tokenizers and token filters beyond the standard one',
    classname: 'org.opensearch.analysis.common.CommonAnalysisPlugin',
    artifacts: [`org.opensearch.plugin:analysis-common:${VERSION}`],
    // Its jar registers a Painless extension (the analysis classes scripts may use).
    extends: 'lang-painless',
  },
];

/** The fields OpenSearch 2.19 requires of a module (and no others: an unknown one is an error). */
const descriptor = (m: Module): string =>
  [
    `# modules/${m.name}, written by firecampd's image recipe (the distribution's zip has one of these, Maven's jar not).`,
    `name=${m.name}`,
    `description=${m.description}`,
    `version=${VERSION}`,
    `opensearch.version=${VERSION}`,
    // What its classes are compiled for (X-Compile-Target-JDK in the jar's manifest).
    'java.version=11',
    `classname=${m.classname}`,
    ...(m.extends ? [`extended.plugins=${m.extends}`] : []),
    '',
  ].join('\n');

const policy = (m: Module): string =>
  [`// modules/${m.name}: what its jars may do beyond what the core's policy grants.`, 'grant {', ...m.policy!.map((p) => `  ${p}`), '};', ''].join('\n');

const launcher = `#!/bin/sh
# firecampd's bin/opensearch for the OpenSearch stand-in: one node in the foreground, java in place of the shell.
#   opensearch [-Ekey=value...] [-p PIDFILE] [-q] [-V]    (passed to OpenSearch; no -d)
# The JVM's options: a few fixed ones, then config/jvm.options and config/jvm.options.d/*.options (one option a
# line; a line that starts with Java versions, 17: or 11-: or 8-10:, counts only for those), then
# OPENSEARCH_JAVA_OPTS (so its -Xms and -Xmx win), then -XX:MaxDirectMemorySize at half the heap unless given.
# Every environment variable named like a setting (dotted lower-case words: discovery.type=single-node) becomes one
# more -Ekey=value, as in upstream's docker distribution. OPENSEARCH_PATH_CONF: the configuration (config/).
set -e
OPENSEARCH_HOME=$(cd "$(dirname "$0")/.." && pwd)
OPENSEARCH_PATH_CONF=\${OPENSEARCH_PATH_CONF:-$OPENSEARCH_HOME/config}
JAVA_HOME=\${JAVA_HOME:-$OPENSEARCH_HOME/jdk}
JAVA=$JAVA_HOME/bin/java
java_major=$(sed -n 's/^JAVA_VERSION="\\([0-9]*\\).*/\\1/p' "$JAVA_HOME/release")
java_major=\${java_major:-17}
unset JAVA_TOOL_OPTIONS
for arg in "$@"; do
  case "$arg" in
  -d | --daemonize)
    echo "opensearch: no -d in this image: run in the foreground" >&2
    exit 1
    ;;
  esac
done
OPENSEARCH_TMPDIR=\${OPENSEARCH_TMPDIR:-$(mktemp -d "\${TMPDIR:-/tmp}/opensearch-XXXXXX")}

# What upstream's launcher always adds: DNS caching, stack size, UTF-8, the bundled JNA, full stack traces, Netty
# without Unsafe or pooled direct arenas, log4j without its shutdown hook or JMX, and the locale data of Java 8's
# date formats (COMPAT), which OpenSearch 2's date parsing expects.
opts="-Dopensearch.networkaddress.cache.ttl=60 -Dopensearch.networkaddress.cache.negative.ttl=10 -XX:+AlwaysPreTouch
-Xss1m -Djava.awt.headless=true -Dfile.encoding=UTF-8 -Djna.nosys=true -XX:-OmitStackTraceInFastThrow
-XX:+ShowCodeDetailsInExceptionMessages -Dio.netty.noUnsafe=true -Dio.netty.noKeySetOptimization=true
-Dio.netty.recycler.maxCapacityPerThread=0 -Dio.netty.allocator.numDirectArenas=0 -Dlog4j.shutdownHookEnabled=false
-Dlog4j2.disable.jmx=true -Djava.locale.providers=SPI,COMPAT"
read_options() {
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
    '' | '#'*) continue ;;
    [0-9]*:*)
      range=\${line%%:*}
      line=\${line#*:}
      case "$range" in
      *-) low=\${range%-} high=$java_major ;;
      *-*) low=\${range%-*} high=\${range#*-} ;;
      *) low=$range high=$range ;;
      esac
      [ "$java_major" -ge "$low" ] && [ "$java_major" -le "$high" ] || continue
      ;;
    esac
    opts="$opts \${line//\\\${OPENSEARCH_TMPDIR\\}/$OPENSEARCH_TMPDIR}"
  done <"$1"
}
read_options "$OPENSEARCH_PATH_CONF/jvm.options"
for f in "$OPENSEARCH_PATH_CONF"/jvm.options.d/*.options; do
  if [ -f "$f" ]; then read_options "$f"; fi
done
# Docker mounts the container's cgroups at the root, where OpenSearch finds its statistics only when told.
opts="$opts -Dopensearch.cgroups.hierarchy.override=/ $OPENSEARCH_JAVA_OPTS"

# From here on the options are split into words on purpose, and not globbed (-Xlog:gc*).
set -f
heap= direct=
for o in $opts; do
  case "$o" in
  -Xmx*) heap=\${o#-Xmx} ;;
  -XX:MaxDirectMemorySize=*) direct=given ;;
  esac
done
if [ -n "$heap" ] && [ -z "$direct" ]; then
  case "$heap" in
  *[gG]) bytes=$((\${heap%?} * 1073741824)) ;;
  *[mM]) bytes=$((\${heap%?} * 1048576)) ;;
  *[kK]) bytes=$((\${heap%?} * 1024)) ;;
  *) bytes=$heap ;;
  esac
  opts="$opts -XX:MaxDirectMemorySize=$((bytes / 2))"
fi

# Read from the environment the shell was started with: busybox's sh drops names with dots from its own (and so from
# env's), where bash keeps them.
settings=$(tr '\\0' '\\n' </proc/$$/environ | grep -E '^([a-z0-9_]+[.][a-z0-9_]+[^=]*|processors)=.' || true)
while IFS= read -r setting; do
  case "$setting" in
  '') ;;
  # What upstream's image does with DISABLE_SECURITY_PLUGIN=true: this one has no security plugin to disable.
  plugins.security.disabled=true) echo "opensearch: no security plugin in this image; ignoring $setting" >&2 ;;
  *) set -- "$@" "-E$setting" ;;
  esac
done <<EOF
$settings
EOF

cd "$OPENSEARCH_HOME"
exec "$JAVA" $opts "-Dopensearch.path.home=$OPENSEARCH_HOME" "-Dopensearch.path.conf=$OPENSEARCH_PATH_CONF" \\
  -Dopensearch.distribution.type=docker -Dopensearch.bundled_jdk=false \\
  -cp "$OPENSEARCH_HOME/lib/*" org.opensearch.bootstrap.OpenSearch "$@"
`;

const jvmOptions = `# The OpenSearch stand-in's JVM options, one a line (a line may start with the Java versions it is for: 17:,
# 11-:, 8-10:). OPENSEARCH_JAVA_OPTS comes after these, so its -Xms and -Xmx win: give both, the same.
-Xms1g
-Xmx1g
# G1 with more headroom than its defaults, so that the heap does not fill to a circuit breaker before it collects.
-XX:+UseG1GC
-XX:G1ReservePercent=25
-XX:InitiatingHeapOccupancyPercent=30
# A directory of the node's own, made by bin/opensearch (OPENSEARCH_TMPDIR): JNA unpacks its library there.
-Djava.io.tmpdir=\${OPENSEARCH_TMPDIR}
-XX:+HeapDumpOnOutOfMemoryError
-XX:HeapDumpPath=data
-XX:ErrorFile=logs/hs_err_pid%p.log
-Xlog:gc*,gc+age=trace,safepoint:file=logs/gc.log:utctime,pid,tags:filecount=32,filesize=64m
`;

const opensearchYml = `# The OpenSearch stand-in's default, as upstream's image: every address. A member's own file replaces it;
# -E arguments and variables named like settings (discovery.type=single-node) add to it.
cluster.name: docker-cluster
network.host: 0.0.0.0
`;

const log4j2 = `# The OpenSearch stand-in's logging: the console, from INFO (-Elogger.level=DEBUG, or
# -Elogger.org.opensearch.cluster=DEBUG for one package). %node_name is OpenSearch's own converter.
status = error
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d{ISO8601}][%-5p][%-25c{1.}] [%node_name]%marker %m%n
rootLogger.level = info
rootLogger.appenderRef.console.ref = console
`;

export const image: ImageRecipe = {
  image: elasticsearch.image,
  // The same build under its minor version's name too: an upgrade from one name to the other restarts every member (the tests' rolling upgrade).
  tags: [`opensearchproject/opensearch:${VERSION.split('.').slice(0, 2).join('.')}`],
  packages: [...JRE_17.packages],
  trees: [...JRE_17.trees],
  maven: [
    {
      dir: `${HOME}/lib`,
      // The server with its libraries (Lucene, Jackson, JNA, …), the logging it configures (log4j-core, optional in
      // its POM) and the class loader of modules that extend others (named in the core's security policy).
      artifacts: [`${SERVER}:${VERSION}`, `org.apache.logging.log4j:log4j-core:${LOG4J}`, `org.opensearch:opensearch-plugin-classloader:${VERSION}`],
    },
    // A module's jars are its own and what it needs beyond the server: the server and its libraries are lib/'s
    // (Painless's SPI jar depends on the server, which would otherwise come along: two copies are jar hell).
    ...MODULES.map((m) => ({ dir: `${HOME}/modules/${m.name}`, artifacts: m.artifacts, exclude: [SERVER] })),
  ],
  links: { ...JRE_17.links, [`${HOME}/jdk`]: JRE_17.links['/opt/java/openjdk'] },
  groups: [{ name: 'opensearch', gid: 1000 }],
  users: [{ name: 'opensearch', uid: 1000, gid: 1000, home: HOME }],
  dirs: [
    { path: HOME, owner: 'opensearch' },
    { path: `${HOME}/bin`, owner: 'opensearch' },
    // Written at the first start: the (empty) keystore.
    { path: `${HOME}/config`, owner: 'opensearch' },
    { path: `${HOME}/config/jvm.options.d`, owner: 'opensearch' },
    { path: `${HOME}/plugins`, owner: 'opensearch' },
    { path: `${HOME}/data`, owner: 'opensearch' },
    { path: `${HOME}/logs`, owner: 'opensearch' },
  ],
  files: [
    { path: `${HOME}/bin/opensearch`, content: launcher, mode: 0o755, owner: 'opensearch' },
    { path: `${HOME}/config/opensearch.yml`, content: opensearchYml, owner: 'opensearch' },
    { path: `${HOME}/config/jvm.options`, content: jvmOptions, owner: 'opensearch' },
    { path: `${HOME}/config/log4j2.properties`, content: log4j2, owner: 'opensearch' },
    ...MODULES.flatMap((m) => [
      { path: `${HOME}/modules/${m.name}/plugin-descriptor.properties`, content: descriptor(m) },
      ...(m.policy ? [{ path: `${HOME}/modules/${m.name}/plugin-security.policy`, content: policy(m) }] : []),
    ]),
  ],
  env: {
    ...JRE_17.env,
    JAVA_HOME: `${HOME}/jdk`,
    PATH: `${JRE_17.env.PATH}:${HOME}/bin`,
  },
  user: 'opensearch',
  workdir: HOME,
  cmd: ['opensearch'],
};

/**
 * The stand-in for the Prometheus community's Elasticsearch exporter (quay.io/prometheuscommunity/elasticsearch-exporter),
 * which members run beside them for their metrics: Debian's build of the same version. As upstream: the program at
 * /bin/elasticsearch_exporter, user nobody. The module gives its whole command line, so it relies on nothing else.
 */
export const exporter: ImageRecipe = {
  image: ES_EXPORTER_IMAGE,
  packages: ['prometheus-elasticsearch-exporter'],
  programs: ['/usr/bin/prometheus-elasticsearch-exporter'],
  links: { '/bin/elasticsearch_exporter': '/usr/bin/prometheus-elasticsearch-exporter' },
  user: '65534:65534',
  cmd: ['/bin/elasticsearch_exporter'],
};
