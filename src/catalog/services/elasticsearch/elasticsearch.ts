// Elasticsearch-compatible search: OpenSearch 2.x, which speaks the REST API
// of Elasticsearch 7.10 (see README.md for what is and is not supported).
//
// Every member is a node of one cluster named after the service. Members
// find each other by DNS name (discovery.seed_hosts: the
// cluster-manager-eligible members' names). The first three members (or the
// first N with --dedicated-masters N) are cluster-manager-eligible; the
// cluster is bootstrapped once, at create, by naming those members in
// cluster.initial_cluster_manager_nodes, which only they see, and only while
// their data directory is empty (see startScript).
//
// No authentication: the security plugin is not served by this machine's
// registries, so each member's HTTP port listens on its own static IP only.
//
// The catalog talks to the cluster over REST (cluster-api.ts): a member
// serves once it is in the cluster and health is not red; the service is
// ACTIVE once every member is in and health is green. A rollout restarts one
// member at a time with allocation limited to primaries and the shards
// flushed, the elected cluster manager last, the next only once green again.
// A scale in drains the leaving members (allocation exclude) and takes the
// eligible ones out of the voting configuration before they go.
import { memberIndex, type MemberSpec } from '../../../agent/members.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import { z } from 'zod';
import type {
  MemberContext,
  MemberRole,
  PlacedMember,
  RolloutStep,
  ServiceSpec,
  ServiceSpecInput,
  ServiceType,
  TypeContext,
  TypeOptions,
} from '../../types.ts';
import { memberResources, trueOrFalse, typeOptions, wholeNumber } from '../../types.ts';
import {
  HTTP_PORT,
  electedManager,
  health,
  joinedNodes,
  nodeOf,
  notSettled,
  persistentSettings,
  putPersistent,
  rest,
  shards,
  votingExclusions,
} from './cluster-api.ts';
import { restoreScript, searchBackup, SNAPSHOTS } from './backup.ts';

const TRANSPORT_PORT = 9300;
/** The Prometheus community's Elasticsearch exporter (it reads OpenSearch's same API), pinned: each member runs one beside it. */
export const ES_EXPORTER_IMAGE = 'quay.io/prometheuscommunity/elasticsearch-exporter:v1.5.0';
/** Where a member's exporter serves its metrics, on the member's address (the exporter's usual port). */
export const ES_EXPORTER_PORT = 9114;
/** The image's opensearch user. */
const ES_USER = '1000:1000';
const DATA = '/data';
/** Where the image has OpenSearch (upstream's layout, and the stand-in's). */
const HOME = '/usr/share/opensearch';
const DEFAULT_HEAP_MIB = 1024;
/** The open files the bootstrap check wants of a node bound to a non-loopback address. */
const OPEN_FILES = 65535;
/** Without dedicated cluster managers, this many of the first members are eligible: a majority survives the loss of one, and more only slow elections. */
const ELIGIBLE_MEMBERS = 3;
const DEDICATED_CHOICES = [0, 3];

const ALLOCATION_ENABLE = 'cluster.routing.allocation.enable';
const ALLOCATION_EXCLUDE = 'cluster.routing.allocation.exclude._name';

/**
 * A service of one member is a single-node cluster (discovery.type:
 * single-node): it elects itself, never looks for peers, and OpenSearch does
 * not enforce its bootstrap checks on it. It cannot take more nodes later, so
 * it never scales: create a service of 3 for that.
 */
const singleNode = (spec: ServiceSpec) => spec.replicas === 1;
/** This many of the first members are dedicated cluster managers (no data); 0 or 3. */
interface SearchOptions {
  dedicatedMasters: number;
}

const options: TypeOptions<SearchOptions> = {
  schema: z.object({ dedicatedMasters: z.number().int().min(0).max(16) }).strict(),
  flags: {
    'dedicated-masters': {
      type: 'number',
      describe: 'the first N members (0 or 3) are cluster managers only, the others data and ingest',
      defaultDescription: '0: the first 3 members are cluster-manager-eligible and hold data too',
    },
  },
  fromFlags: (given) => (given['dedicated-masters'] === undefined ? undefined : { dedicatedMasters: Number(given['dedicated-masters']) }),
};

const dedicatedOf = (spec: ServiceSpecInput) => typeOptions(spec, elasticsearch)?.dedicatedMasters ?? 0;
/** How many of the first members are cluster-manager-eligible (a bound on the index: a smaller service has fewer). */
const eligibleBound = (spec: ServiceSpec | ServiceSpecInput) => dedicatedOf(spec) || ELIGIBLE_MEMBERS;
export const isManagerEligible = (spec: ServiceSpec, index: number) => index < eligibleBound(spec);
const holdsData = (spec: ServiceSpec, index: number) => index >= dedicatedOf(spec);
const memberName = (spec: ServiceSpec, index: number) => `${spec.name}-${index}`;
const dnsName = (spec: ServiceSpec, index: number, domain: string) => `${memberName(spec, index)}.${spec.name}.${domain}`;
/** The cluster-manager-eligible members a service of this size has, by index. */
const eligibleIndexes = (spec: ServiceSpec) => Array.from({ length: Math.min(eligibleBound(spec), spec.replicas) }, (_, i) => i);

/** OpenSearch 2's role names: cluster_manager (no longer master), data, ingest. */
export function nodeRoles(spec: ServiceSpec, index: number): string[] {
  return [...(isManagerEligible(spec, index) ? ['cluster_manager'] : []), ...(holdsData(spec, index) ? ['data', 'ingest'] : [])];
}

/** Settings whose value the user gives as a number and opensearch.yml wants with a unit. */
const UNITS: Record<string, string> = { 'indices.recovery.max_bytes_per_sec': 'mb', 'indices.memory.index_buffer_size': '%' };

/** Keys firecampd writes into opensearch.yml itself: a --config line may not repeat one (OpenSearch refuses a key given twice). */
const OWN_KEYS = [
  'cluster.name',
  'node.name',
  'node.roles',
  'node.master',
  'node.data',
  'node.ingest',
  'path.data',
  'path.repo',
  'network.host',
  'network.bind_host',
  'network.publish_host',
  'http.port',
  'transport.port',
  'discovery.seed_hosts',
  'discovery.type',
  'cluster.initial_cluster_manager_nodes',
  'cluster.initial_master_nodes',
  'node.attr.zone',
  'cluster.routing.allocation.awareness.attributes',
];

/** The top-level keys of --config lines ("key: value" at the start of a line). */
const configKeys = (config: string) => [...config.matchAll(/^([A-Za-z0-9_.-]+)\s*:/gm)].map((m) => m[1]);

/** Why --memory is too small for the heap, or undefined: the JVM takes direct memory besides, half the heap. */
function heapDoesNotFit(spec: ServiceSpecInput): string | undefined {
  const heap = spec.heapMiB ?? DEFAULT_HEAP_MIB;
  if (spec.memoryMiB === undefined || spec.memoryMiB >= heap * 1.5) return undefined;
  return `--memory ${spec.memoryMiB} leaves no room beside a heap of ${heap} MiB (the JVM takes half the heap again in direct memory, and Lucene wants page cache): give --memory at least ${Math.ceil(heap * 1.5)} or a smaller --heap-mib`;
}

export const elasticsearch: ServiceType & { options: TypeOptions<SearchOptions> } = {
  name: 'elasticsearch',
  title: 'Elasticsearch',
  image: 'opensearchproject/opensearch:2.19.6',
  defaults: { replicas: 3, volumeSizeMiB: 1024 },
  jvm: true,
  options,
  secrets: [],
  backup: searchBackup,
  settings: {
    'indices.recovery.max_bytes_per_sec': {
      describe: 'MiB/s a node sends or takes to recover or move a shard copy',
      default: '40',
      check: (v) => wholeNumber(v, 1, 100_000),
    },
    'indices.memory.index_buffer_size': {
      describe: 'percent of the heap the node gives to indexing buffers',
      default: '10',
      check: (v) => wholeNumber(v, 1, 50),
    },
    'thread_pool.write.queue_size': {
      describe: 'index and bulk requests a node queues before it rejects more (429)',
      default: '10000',
      check: (v) => wholeNumber(v, 1, 1_000_000),
    },
    'thread_pool.search.queue_size': {
      describe: 'search requests a node queues before it rejects more (429)',
      default: '1000',
      check: (v) => wholeNumber(v, 1, 1_000_000),
    },
    'action.auto_create_index': { describe: 'make an index when a document is first written to it', default: 'true', check: trueOrFalse },
    // The bootstrap check on vm.max_map_count applies only when mmap is allowed: hosts keep Linux's default of 65530 unless told otherwise.
    'node.store.allow_mmap': {
      describe: 'memory-map index files (faster); true needs vm.max_map_count ≥ 262144 on every node, or members fail their bootstrap check',
      default: 'false',
      check: trueOrFalse,
    },
  },

  describeSecret: (name) => ({
    describe: `an Elasticsearch service has no secrets (no authentication: its members listen on their own addresses only); ${name} is unknown`,
  }),

  normalize(spec: ServiceSpecInput): ServiceSpec {
    const replicas = spec.replicas ?? elasticsearch.defaults.replicas;
    const dedicated = dedicatedOf(spec);
    if (!DEDICATED_CHOICES.includes(dedicated))
      throw new UserError(
        `--dedicated-masters is 0 or 3 (three cluster managers elect one with the loss of any one of them): --dedicated-masters ${dedicated}`,
      );
    if (dedicated > 0 && replicas <= dedicated)
      throw new UserError(
        `--dedicated-masters ${dedicated} makes members 0 to ${dedicated - 1} cluster managers that hold no data: --replicas must be at least ${dedicated + 1}`,
      );
    const noRoom = heapDoesNotFit(spec);
    if (noRoom) throw new UserError(noRoom);
    const clash = configKeys(spec.config ?? '').filter((k) => OWN_KEYS.includes(k) || k in elasticsearch.settings);
    if (clash.length > 0)
      throw new UserError(
        `--config may not set ${clash.join(', ')}: firecampd writes ${clash.length === 1 ? 'it' : 'them'} (use --set for the settings of "firecampd service config")`,
      );
    return { ...spec, replicas };
  },

  /** The members that bootstrap the cluster, once: the eligible ones at create (see startScript). */
  initialState: (spec) => ({
    initialManagers: (singleNode(spec) ? [] : eligibleIndexes(spec)).map((i) => memberName(spec, i)).join(','),
  }),

  needsStaticIps: () =>
    'each Elasticsearch member listens on ports 9200 (HTTP) and 9300 (transport) of an address of its own, and two may share a node: start the nodes with --static-ips and --ip-pool',

  cannotScale(spec, replicas) {
    if (singleNode(spec) !== (replicas === 1))
      return singleNode(spec)
        ? 'a service of one member is a single-node cluster, which cannot take more nodes: create a service of 3 and move the data'
        : 'a cluster of several members cannot become a single-node one: keep at least 2';
    const dedicated = dedicatedOf(spec);
    if (dedicated > 0 && replicas <= dedicated)
      return `the first ${dedicated} members are dedicated cluster managers: keep at least ${dedicated + 1}, so that one holds data`;
    return undefined;
  },

  group: () => 0,

  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const heap = spec.heapMiB ?? DEFAULT_HEAP_MIB;
    const seeds = eligibleIndexes(spec).map((i) => `${dnsName(spec, i, ctx.domain)}:${TRANSPORT_PORT}`);
    const initial = String(ctx.state.initialManagers ?? '')
      .split(',')
      .filter(Boolean);
    return Array.from({ length: spec.replicas }, (_, i) => {
      const name = memberName(spec, i);
      const ip = ctx.ips[i];
      if (!ip) throw new Error(`${name} has no static IP: an Elasticsearch member listens on an address of its own`);
      return {
        service: spec.name,
        name,
        image: spec.image ?? elasticsearch.image,
        command: ['sh', `${DATA}/firecampd/start.sh`],
        user: ES_USER,
        env: {
          // The bootstrap check wants the initial heap equal to the maximum.
          OPENSEARCH_JAVA_OPTS: `-Xms${heap}m -Xmx${heap}m`,
          // What upstream's image reads to run without its security plugin (none is installed here); the start script honours it too.
          DISABLE_SECURITY_PLUGIN: 'true',
        },
        // What the file-descriptor bootstrap check wants of a node that has peers; a single node is not checked and keeps the engine's limit.
        ...(singleNode(spec) ? {} : { ulimits: { nofile: { soft: OPEN_FILES, hard: OPEN_FILES } } }),
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? elasticsearch.defaults.volumeSizeMiB, mountPath: DATA },
        dnsName: dnsName(spec, i, ctx.domain),
        ip,
        port: HTTP_PORT,
        ports: [HTTP_PORT, TRANSPORT_PORT, ES_EXPORTER_PORT],
        // Its own node's stats and the cluster's health, from its HTTP API on its own address.
        metrics: {
          port: ES_EXPORTER_PORT,
          exporter: {
            image: ES_EXPORTER_IMAGE,
            command: ['/bin/elasticsearch_exporter', `--es.uri=http://${ip}:${HTTP_PORT}`, `--web.listen-address=${ip}:${ES_EXPORTER_PORT}`],
          },
        },
        configFiles: [
          { path: 'firecampd/opensearch.yml', content: opensearchYml(spec, i, ip, seeds) },
          { path: 'firecampd/start.sh', content: startScript(name, initial.includes(name) ? initial : []), mode: 0o755 },
        ],
        ...memberResources(spec),
      };
    });
  },

  /** Every member in the cluster, and health green. */
  async initialize(_spec, members) {
    try {
      return await everyMemberIn(members);
    } catch (err) {
      return `waiting for the members to form a cluster (${errorMessage(err)})`;
    }
  },

  /** After a scale out (or a start after a stop): the new members join by discovery; exclusions left by an earlier scale in go first. */
  async join(spec, members, ctx) {
    try {
      await tidyExclusions(await factsOf(spec, members, ctx));
      return await everyMemberIn(members);
    } catch (err) {
      return `waiting for the members to form a cluster (${errorMessage(err)})`;
    }
  },

  /**
   * Before a scale in: no shard copy may stay on the leaving members
   * (allocation exclude moves them), and the eligible ones leave the voting
   * configuration, so that the cluster managers never count on a vote that
   * is gone. Cleared by maintain once they are out of the cluster.
   */
  async leave(spec, members, leaving, ctx) {
    const staying = members.filter((m) => !leaving.includes(m));
    const names = leaving.map((m) => m.spec.name).sort();
    const { host } = await clusterView(staying);
    const settings = await persistentSettings(host);
    if (settings[ALLOCATION_EXCLUDE] !== names.join(',')) {
      await putPersistent(host, { [ALLOCATION_EXCLUDE]: names.join(',') });
      ctx.log.info({ service: spec.name, members: names }, 'elasticsearch: moving shards off the leaving members');
      return `moving shards off ${names.join(', ')}`;
    }
    const rows = await shards(host);
    const lost = rows.filter((r) => r.prirep === 'p' && r.state === 'UNASSIGNED').length;
    if (lost > 0) return `${lost} primary shards have no active copy: waiting for them before members go (bring back the members that hold them)`;
    const left = rows.filter((r) => names.includes(nodeOf(r) ?? '')).length;
    if (left > 0)
      return `moving ${left} shard copies off ${names.join(', ')} (a copy that no staying data member can take stays: lower that index's number_of_replicas)`;
    const eligible = leaving.filter((m) => isManagerEligible(spec, memberIndex(m.spec))).map((m) => m.spec.name);
    const excluded = eligible.length > 0 ? await votingExclusions(host) : [];
    const missing = eligible.filter((n) => !excluded.includes(n));
    if (missing.length === 0) return undefined;
    // The call returns once the voting configuration no longer holds them (the elected one abdicates first).
    await rest(host, 'POST', `/_cluster/voting_config_exclusions?node_names=${missing.join(',')}&timeout=30s`, undefined, 35_000);
    ctx.log.info({ service: spec.name, members: missing }, 'elasticsearch: excluded from the voting configuration');
    return `taking ${missing.join(', ')} out of the voting configuration`;
  },

  /** Re-enables allocation after a rolling restart, and clears the exclusions of members that are gone; every few seconds at most. */
  async maintain(spec, members, ctx) {
    if (upkeepDue(spec.name)) await upkeep(spec, members, ctx);
  },

  async notReady(_spec, m) {
    try {
      if (!(await joinedNodes(m.host)).has(m.spec.name)) return 'not in the cluster';
      return (await health(m.host)).status === 'red' ? 'cluster health is red' : undefined;
    } catch (err) {
      return errorMessage(err);
    }
  },

  async roles(spec, members) {
    const { host, nodes } = await clusterView(members);
    const elected = await electedManager(host);
    return Object.fromEntries(members.map((m) => [m.spec.name, { role: roleOf(spec, m, nodes, elected) } satisfies MemberRole]));
  },

  /**
   * One member at a time, once health is green: shard allocation limited to
   * primaries (the restarting member's copies wait for it rather than being
   * rebuilt elsewhere) and a flush (its copies recover from their own files),
   * then the restart. maintain re-enables allocation once it is back. The
   * elected cluster manager goes last, so that the cluster elects once.
   */
  async rolloutStep(spec, members, pending, ctx): Promise<RolloutStep> {
    const facts = await factsOf(spec, members, ctx);
    await reenableAllocation(facts);
    const { host, nodes } = facts;
    const why = await notSettled(host);
    if (why) return { wait: `waiting for green before the next restart: ${why}` };
    const elected = await electedManager(host);
    const order = (m: PlacedMember) => (m.spec.name === elected ? 1000 : 0) + memberIndex(m.spec);
    const next = [...pending].sort((a, b) => order(a) - order(b))[0];
    await putPersistent(host, { [ALLOCATION_ENABLE]: 'primaries' });
    await rest(host, 'POST', '/_flush', undefined, 60_000);
    // Which process is the one to restart: allocation comes back once the member runs a new one (reenableAllocation).
    return { restart: next.spec.name, state: { restarting: next.spec.name, restartingProcess: nodes.get(next.spec.name) ?? '' } };
  },
};

/**
 * A member of the cluster that answers, and the nodes in the cluster as it
 * sees them. Every member is asked at once and the first answer wins: a
 * member on a dead node answers nothing, and waiting on it in turn would hold
 * up the catalog's pass.
 */
async function clusterView(members: PlacedMember[]): Promise<{ host: string; nodes: Map<string, string> }> {
  try {
    return await Promise.any(members.map(async (m) => ({ host: m.host, nodes: await joinedNodes(m.host) })));
  } catch (err) {
    const errors = err instanceof AggregateError ? err.errors.map(errorMessage) : [errorMessage(err)];
    throw new Error(`no member answered as part of a cluster: ${errors.join('; ')}`, { cause: err });
  }
}

/** Undefined once every member is in the cluster and it is green (or yellow only for copies with nowhere to go). */
async function everyMemberIn(members: PlacedMember[]): Promise<string | undefined> {
  const { host, nodes } = await clusterView(members);
  const out = members.filter((m) => !nodes.has(m.spec.name)).map((m) => m.spec.name);
  if (out.length > 0) return `waiting for ${out.join(', ')} to join the cluster`;
  const why = await notSettled(host);
  return why ? `waiting for green: ${why}` : undefined;
}

function roleOf(spec: ServiceSpec, m: PlacedMember, nodes: Map<string, string>, elected: string | undefined): string {
  if (!nodes.has(m.spec.name)) return 'not in the cluster';
  if (m.spec.name === elected) return 'cluster_manager';
  const i = memberIndex(m.spec);
  if (!isManagerEligible(spec, i)) return 'data';
  return holdsData(spec, i) ? 'data, cluster_manager-eligible' : 'cluster_manager-eligible';
}

/** When each service's upkeep last ran: the catalog passes every 500 ms, and three REST calls each time would be waste. */
const upkeepAt = new Map<string, number>();
function upkeepDue(service: string): boolean {
  if (Date.now() - (upkeepAt.get(service) ?? 0) < 2000) return false;
  upkeepAt.set(service, Date.now());
  return true;
}

/** What the upkeep steps decide from: the service as the catalog has it, and the cluster as one member answers. */
interface Facts {
  spec: ServiceSpec;
  members: PlacedMember[];
  ctx: TypeContext;
  host: string;
  nodes: Map<string, string>;
  /** The cluster's persistent settings. */
  settings: Record<string, string>;
}

async function factsOf(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<Facts> {
  const { host, nodes } = await clusterView(members);
  return { spec, members, ctx, host, nodes, settings: await persistentSettings(host) };
}

/** maintain's work, each time it is due. */
export async function upkeep(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<void> {
  const facts = await factsOf(spec, members, ctx);
  await reenableAllocation(facts);
  await tidyExclusions(facts);
}

/**
 * After a rolling restart's step: allocation goes back to all shards once
 * every member is in the cluster and the one being restarted runs a new
 * process. Until then its old process may still be up, between the step and
 * its agent stopping it, and re-enabling would let its copies be rebuilt
 * elsewhere for nothing. firecampd owns this setting while it is
 * "primaries".
 */
async function reenableAllocation({ spec, members, ctx, host, nodes, settings }: Facts): Promise<void> {
  if (settings[ALLOCATION_ENABLE] !== 'primaries') return;
  if (!members.every((m) => nodes.has(m.spec.name))) return;
  const restarting = ctx.state.restarting;
  if (typeof restarting === 'string' && nodes.get(restarting) === ctx.state.restartingProcess) return;
  await putPersistent(host, { [ALLOCATION_ENABLE]: null });
  ctx.log.info({ service: spec.name, after: restarting }, 'elasticsearch: shard allocation re-enabled');
}

/**
 * The exclusions a scale in left (allocation exclude, voting configuration
 * exclusions) go once they name nobody that is still leaving: a member again
 * (a later scale out reused the name) or a node no longer in the cluster. A
 * name stays while its node is still in the cluster and not a member: its
 * container is being stopped, and must take no shard meanwhile.
 */
async function tidyExclusions({ spec, members, ctx, host, nodes, settings }: Facts): Promise<void> {
  const names = new Set(members.map((m) => m.spec.name));
  const stale = (n: string) => names.has(n) || !nodes.has(n);
  const excluded = (settings[ALLOCATION_EXCLUDE] ?? '').split(',').filter(Boolean);
  if (excluded.some(stale)) {
    const keep = excluded.filter((n) => !stale(n));
    await putPersistent(host, { [ALLOCATION_EXCLUDE]: keep.length > 0 ? keep.join(',') : null });
    ctx.log.info({ service: spec.name, cleared: excluded.filter(stale) }, 'elasticsearch: allocation exclusions cleared');
  }
  const voting = await votingExclusions(host);
  if (voting.length > 0 && voting.every(stale)) {
    await rest(host, 'DELETE', '/_cluster/voting_config_exclusions?wait_for_removal=false');
    ctx.log.info({ service: spec.name, cleared: voting }, 'elasticsearch: voting configuration exclusions cleared');
  }
}

/** The member's opensearch.yml, less what only the start script knows (its zone, and whether it bootstraps the cluster). */
export function opensearchYml(spec: ServiceSpec, index: number, ip: string, seeds: string[]): string {
  const setting = (k: string) => `${spec.settings?.[k] ?? elasticsearch.settings[k].default!}${UNITS[k] ?? ''}`;
  return (
    [
      '# Written by firecampd; change settings with "firecampd service config". The start script adds the zone.',
      `cluster.name: ${spec.name}`,
      `node.name: ${memberName(spec, index)}`,
      `node.roles: [${nodeRoles(spec, index).join(', ')}]`,
      `path.data: ${DATA}/opensearch`,
      // Where backups put their snapshot repositories (see backup.ts).
      `path.repo: ${SNAPSHOTS}`,
      // Its own address only: nothing authenticates a client, and another member may share the node.
      `network.host: ${ip}`,
      `http.port: ${HTTP_PORT}`,
      `transport.port: ${TRANSPORT_PORT}`,
      // By name: a member that moves keeps its name and address. OpenSearch looks the names up again on each discovery round.
      ...(singleNode(spec) ? ['discovery.type: single-node'] : [`discovery.seed_hosts: [${seeds.join(', ')}]`]),
      // Copies of a shard go to members in different zones (node.attr.zone) when there are several.
      'cluster.routing.allocation.awareness.attributes: zone',
      ...Object.keys(elasticsearch.settings).map((k) => `${k}: ${setting(k)}`),
      ...(spec.config ? [spec.config] : []),
    ].join('\n') + '\n'
  );
}

/**
 * The member's start script (POSIX sh, as the image's opensearch user): the
 * config from firecampd's file with the node's zone, then OpenSearch in place
 * of the shell, so that SIGTERM reaches the JVM.
 *
 * cluster.initial_cluster_manager_nodes bootstraps a new cluster: the named
 * members, finding a majority of each other, elect the first cluster manager.
 * It is given only to the members named at create (`initial`), and only
 * while their data directory is empty. A member with cluster state would
 * ignore it, but one whose volume came back empty would not: with it, such
 * members could bootstrap a second, empty cluster beside the one that holds
 * the data, under the same name. Upstream says to remove it once the
 * cluster has formed; this is the same rule, kept by each member itself.
 */
export function startScript(me: string, initial: string[]): string {
  const bootstrap = initial.length > 0 ? [`  [ -d ${DATA}/opensearch/nodes ] || echo 'cluster.initial_cluster_manager_nodes: [${initial.join(', ')}]'`] : [];
  return `#!/bin/sh
# Written by firecampd: starts OpenSearch as ${me}.
set -eu
mkdir -p ${DATA}/opensearch
${restoreScript()}# The zone of the node that runs it (firecampd --zone), for shard allocation awareness; quoted for YAML.
zone=$(printf '%s' "\${FIRECAMPD_ZONE:-default}" | sed "s/'/''/g")
yml=${HOME}/config/opensearch.yml
{
${[`  cat ${DATA}/firecampd/opensearch.yml`, `  echo "node.attr.zone: '$zone'"`, ...bootstrap].join('\n')}
} > "$yml.tmp"
mv "$yml.tmp" "$yml"
# As upstream's entrypoint does: an image that has the security plugin runs without it when asked (this one has no TLS or users set up).
set --
if [ -d ${HOME}/plugins/opensearch-security ] && [ "\${DISABLE_SECURITY_PLUGIN:-}" = true ]; then set -- -Eplugins.security.disabled=true; fi
export OPENSEARCH_JAVA_OPTS="-Dopensearch.cgroups.hierarchy.override=/ \${OPENSEARCH_JAVA_OPTS:-}"
exec ${HOME}/bin/opensearch "$@"
`;
}
