// Cassandra: a ring of 1 or 3 and more members, spread over zones.
//
// Members gossip and serve CQL on their static IPs (each listens on 7000
// and 9042 of its own address, so two may share a node). The first three
// members are the seeds; placement spreads a service's members over zones
// first, so they are one per zone where there are three. Each member's
// datacenter and rack are its node's region and zone at its first start
// (GossipingPropertyFileSnitch), kept on its volume after that: Cassandra
// refuses to start a node whose rack changed, and the rack is where its
// replicas sit.
//
// A member that is not a seed joins by bootstrap, streaming its ranges from
// the ring, and only one may bootstrap at a time: it waits, its container
// running, until the catalog lets it go (a file on its volume), and the
// catalog lets the next one go once the last is Up and Normal. After a scale
// out the catalog runs `nodetool cleanup` on every member, one at a time,
// so that none keeps data of ranges it gave away; before a scale in the
// leaving members decommission, streaming their ranges to those that stay.
//
// Authentication is Cassandra's PasswordAuthenticator. At initialization
// the catalog replicates system_auth to min(3, members) per datacenter,
// repairs it, creates the superuser `admin` with a generated password, and
// takes login and superuser away from the default cassandra role.
//
// A rollout drains one member (`nodetool drain`: it flushes and stops
// taking writes) and restarts it, and the next only once every member is Up
// and Normal as every other sees it.
import { JMX_EXPORTER_PORT, jmxExporter } from '../../jmx-exporter.ts';
import { CASSANDRA_JMX_RULES } from './jmx-rules.ts';
import type { Client } from 'cassandra-driver';
import { memberIndex, type MemberSpec } from '../../../agent/members.ts';
import { cassandraBackup, restoredConfig, restoreScript } from './backup.ts';
import { CASSANDRA_ADMIN, CQL_PORT, DATA, STATE, jmxPort, nodetool, withCql } from './tools.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import { newSecret } from '../../secrets.ts';
import { execOk } from '../../member-exec.ts';
import type { MemberContext, PlacedMember, RolloutStep, ServiceSpec, ServiceSpecInput, ServiceType, TypeContext } from '../../types.ts';
import { memberResources, wholeNumber } from '../../types.ts';

const STORAGE_PORT = 7000;
/** The upstream image's cassandra user. */
const CASSANDRA_USER = '999:999';
const JOURNAL = '/var/lib/cassandra-commitlog';
/** firecampd's files, written by the agent (root's). */
const FIRECAMPD = `${DATA}/firecampd`;
const DEFAULT_HEAP_MIB = 1024;
const MAX_SEEDS = 3;

const isSeed = (index: number) => index < MAX_SEEDS;

/** Each node's state by address as `nodetool status` prints it: UN (Up, Normal), UJ (joining), UL (leaving), DN (down)… */
export function parseStatus(out: string): Map<string, string> {
  return new Map([...out.matchAll(/^([UD][NLJM])\s+(\S+)\s/gm)].map((m) => [m[2], m[1]]));
}

/** The ring as the first member that answers sees it (the seeds first: they never wait to bootstrap). */
async function ring(members: PlacedMember[], ctx: TypeContext): Promise<{ from: PlacedMember; status: Map<string, string> } | undefined> {
  const order = [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec));
  for (const m of order) {
    try {
      return { from: m, status: parseStatus(await nodetool(m, ctx, ['status'])) };
    } catch (err) {
      ctx.log.debug({ member: m.spec.name, err: errorMessage(err) }, 'cassandra: nodetool status failed; asking another member');
    }
  }
  return undefined;
}

/**
 * Every member in the ring, Up and Normal. A member that is not in it yet
 * and waits to bootstrap is let go, the lowest index first, one at a time:
 * Cassandra refuses two range movements at once.
 */
async function ringStep(members: PlacedMember[], ctx: TypeContext): Promise<string | undefined> {
  const r = await ring(members, ctx);
  if (!r) return 'waiting for a member to answer nodetool status';
  for (const m of [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))) {
    const state = r.status.get(m.spec.ip!);
    if (state === 'UN') continue;
    if (state === 'UJ') return `waiting for ${m.spec.name} to bootstrap (it streams its ranges from the ring)`;
    if (state === undefined && !isSeed(memberIndex(m.spec))) {
      await execOk(ctx.exec, m.spec, ['sh', '-c', `mkdir -p ${STATE} && touch ${STATE}/bootstrap`]);
      return `${m.spec.name} may bootstrap now; waiting for it to join the ring`;
    }
    return `waiting for ${m.spec.name} to be Up and Normal in the ring (${state ?? 'not seen yet'} as ${r.from.spec.name} sees it)`;
  }
  return undefined;
}

const badLogin = (err: unknown) => /authenticat|credentials|password/i.test(errorMessage(err));
const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;

/** system_auth's replication as it should be: NetworkTopologyStrategy, min(3, nodes) in each datacenter. */
function authReplication(c: Client): Record<string, string> {
  const perDc = new Map<string, number>();
  for (const h of c.hosts.values()) perDc.set(h.datacenter, (perDc.get(h.datacenter) ?? 0) + 1);
  return {
    class: 'org.apache.cassandra.locator.NetworkTopologyStrategy',
    ...Object.fromEntries([...perDc].map(([dc, n]) => [dc, String(Math.min(3, n))])),
  };
}

/**
 * system_auth replicated as it should be, repaired after a change so that
 * each replica holds every role (logins read at quorum). Each member repairs
 * its primary ranges (-pr): together they cover the ring once. Returns
 * whether it changed.
 */
async function replicateAuth(c: Client, members: PlacedMember[], ctx: TypeContext): Promise<boolean> {
  const want = authReplication(c);
  const row = (await c.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = 'system_auth'")).first();
  const have = (row?.get('replication') ?? {}) as Record<string, string>;
  const same = Object.keys(want).length === Object.keys(have).length && Object.entries(want).every(([k, v]) => have[k] === v);
  if (same) return false;
  const map = Object.entries(want)
    .map(([k, v]) => `${quote(k)}: ${quote(v)}`)
    .join(', ');
  ctx.log.info({ service: members[0]?.spec.service, replication: want }, 'cassandra: replicating system_auth');
  await c.execute(`ALTER KEYSPACE system_auth WITH replication = {${map}}`);
  for (const m of members) await nodetool(m, ctx, ['repair', '--full', '-pr', 'system_auth'], 600_000);
  return true;
}

/**
 * The superuser `admin` with the generated password, system_auth replicated,
 * the default cassandra login gone. Idempotent: each pass looks at what is.
 */
async function authStep(members: PlacedMember[], ctx: TypeContext): Promise<string | undefined> {
  const password = ctx.secrets.admin ?? '';
  try {
    return await withCql(members, CASSANDRA_ADMIN, password, async (c) => {
      await replicateAuth(c, members, ctx);
      const row = (await c.execute("SELECT can_login, is_superuser FROM system_auth.roles WHERE role = 'cassandra'")).first();
      if (row && (row.get('can_login') || row.get('is_superuser'))) {
        // A password nobody keeps: the role stays (Cassandra's own), unusable.
        await c.execute(`ALTER ROLE cassandra WITH PASSWORD = ${quote(newSecret())} AND SUPERUSER = false AND LOGIN = false`);
      }
      return undefined;
    });
  } catch (err) {
    if (!badLogin(err)) throw err;
  }
  // No admin yet: Cassandra's default superuser makes it, once system_auth is replicated and repaired
  // (the default role was written to one replica only).
  try {
    return await withCql(members, 'cassandra', 'cassandra', async (c) => {
      await replicateAuth(c, members, ctx);
      await c.execute(`CREATE ROLE IF NOT EXISTS ${CASSANDRA_ADMIN} WITH PASSWORD = ${quote(password)} AND SUPERUSER = true AND LOGIN = true`);
      ctx.log.info({ service: members[0]?.spec.service }, 'cassandra: made the superuser admin');
      return 'made the superuser admin; logging in as it';
    });
  } catch (err) {
    // Cassandra makes its default role some seconds after the ring forms.
    if (badLogin(err)) return `waiting for Cassandra's default superuser to exist (${errorMessage(err)})`;
    throw err;
  }
}

/**
 * After a scale out: `nodetool cleanup` on each member, one a pass, so that
 * none keeps rows of ranges it gave away. A file per ring size on the
 * member's volume says it is done, whichever leader did it.
 */
async function cleanupStep(members: PlacedMember[], ctx: TypeContext): Promise<string | undefined> {
  const marker = `${STATE}/cleaned-for-${members.length}`;
  const ordered = [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec));
  const clean = await Promise.all(ordered.map(async (m) => (await ctx.exec(m.spec, ['test', '-f', marker])).exitCode === 0));
  if (!clean.includes(true)) {
    // Before the first cleanup, every member must see the new ring itself: gossip brings it to each at its own time,
    // and a coordinator that still has the old one would send reads and writes to the ranges a cleanup drops.
    for (const m of ordered) {
      const status = parseStatus(await nodetool(m, ctx, ['status']));
      const missing = ordered.find((o) => status.get(o.spec.ip!) !== 'UN');
      if (missing) {
        const seen = status.get(missing.spec.ip!) ?? 'not in its ring';
        return `waiting for every member to see the whole ring Up and Normal before cleanup: ${m.spec.name} sees ${missing.spec.name} ${seen}`;
      }
    }
  }
  for (const [i, m] of ordered.entries()) {
    if (clean[i]) continue;
    ctx.log.info({ member: m.spec.name }, 'cassandra: nodetool cleanup');
    await nodetool(m, ctx, ['cleanup'], 3_600_000);
    await execOk(ctx.exec, m.spec, ['touch', marker]);
    return `cleaned up ${m.spec.name}; going on with the next member`;
  }
  return undefined;
}

/** Marks every member as clean for the ring's size: at create no range moved. */
async function markClean(members: PlacedMember[], ctx: TypeContext): Promise<void> {
  for (const m of members) await execOk(ctx.exec, m.spec, ['sh', '-c', `mkdir -p ${STATE} && touch ${STATE}/cleaned-for-${members.length}`]);
}

const setting = (spec: ServiceSpec, k: string) => spec.settings?.[k] ?? cassandra.settings[k].default!;

function yaml(spec: ServiceSpec, ip: string, seeds: string[], journal: boolean): string {
  return [
    '# Written by firecampd; change settings with "firecampd service config".',
    `cluster_name: ${quote(spec.name)}`,
    'num_tokens: 16',
    'allocate_tokens_for_local_replication_factor: 3',
    'seed_provider:',
    '  - class_name: org.apache.cassandra.locator.SimpleSeedProvider',
    '    parameters:',
    `      - seeds: "${seeds.join(',')}"`,
    `listen_address: ${ip}`,
    `rpc_address: ${ip}`,
    `storage_port: ${STORAGE_PORT}`,
    `native_transport_port: ${CQL_PORT}`,
    'endpoint_snitch: GossipingPropertyFileSnitch',
    'partitioner: org.apache.cassandra.dht.Murmur3Partitioner',
    'authenticator: PasswordAuthenticator',
    'authorizer: CassandraAuthorizer',
    'role_manager: CassandraRoleManager',
    'data_file_directories:',
    `  - ${DATA}/data`,
    `commitlog_directory: ${journal ? JOURNAL : DATA}/commitlog`,
    `saved_caches_directory: ${DATA}/saved_caches`,
    `hints_directory: ${DATA}/hints`,
    'commitlog_sync: periodic',
    `commitlog_sync_period: ${setting(spec, 'commitlog_sync_period_ms')}ms`,
    `concurrent_reads: ${setting(spec, 'concurrent_reads')}`,
    `concurrent_writes: ${setting(spec, 'concurrent_writes')}`,
    `compaction_throughput: ${setting(spec, 'compaction_throughput_mib')}MiB/s`,
    ...(spec.config ? [spec.config] : []),
  ].join('\n');
}

export { CASSANDRA_ADMIN, CQL_PORT, jmxPort };

export const cassandra: ServiceType = {
  name: 'cassandra',
  title: 'Cassandra',
  image: 'cassandra:5.0',
  defaults: { replicas: 3, volumeSizeMiB: 4096 },
  jvm: true,
  journal: 'the commit log',
  secrets: ['admin'],
  backup: cassandraBackup,
  settings: {
    concurrent_reads: { describe: 'reads a member runs at once', default: '32', check: (v) => wholeNumber(v, 2, 1024) },
    concurrent_writes: { describe: 'writes a member runs at once', default: '32', check: (v) => wholeNumber(v, 2, 1024) },
    compaction_throughput_mib: { describe: 'MiB/s compaction may use on a member (0: no limit)', default: '64', check: (v) => wholeNumber(v, 0, 100_000) },
    // A member's own crash loses at most this much of its commit log; its replicas on other nodes hold the writes.
    commitlog_sync_period_ms: { describe: 'how often the commit log is synced to disk, in ms', default: '10000', check: (v) => wholeNumber(v, 10, 60_000) },
  },

  describeSecret: () => ({ user: CASSANDRA_ADMIN, describe: 'the Cassandra superuser (CQL, PasswordAuthenticator)' }),

  normalize(spec: ServiceSpecInput): ServiceSpec {
    const replicas = spec.replicas ?? cassandra.defaults.replicas;
    if (replicas === 2) throw new UserError('a Cassandra service has 1 member or 3 and more (replication factor 3 needs 3): --replicas 2');
    return { ...spec, replicas };
  },

  needsStaticIps: () =>
    'Cassandra members gossip and serve CQL on addresses of their own, which follow them to other nodes: start the nodes with --static-ips and --ip-pool',

  cannotScale(spec, replicas) {
    if (replicas === 2) return 'a Cassandra service has 1 member or 3 and more';
    if (replicas < MAX_SEEDS && spec.replicas >= MAX_SEEDS) return 'keyspaces may keep 3 replicas and the first 3 members are the seeds: keep at least 3';
    return undefined;
  },

  group: () => 0,

  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const journal = spec.journalVolumeSizeMiB !== undefined;
    const heap = spec.heapMiB ?? DEFAULT_HEAP_MIB;
    const seeds = ctx.ips.slice(0, MAX_SEEDS).filter((ip): ip is string => ip !== undefined);
    return Array.from({ length: spec.replicas }, (_, i) => {
      const name = `${spec.name}-${i}`;
      const ip = ctx.ips[i]!;
      const jmx = jmxExporter(ip, DATA, CASSANDRA_JMX_RULES);
      return {
        service: spec.name,
        name,
        image: spec.image ?? cassandra.image,
        command: ['sh', `${FIRECAMPD}/start.sh`],
        user: CASSANDRA_USER,
        env: {
          MAX_HEAP_SIZE: `${heap}M`,
          // JMX on a port of the member's own (see jmxPort); the image's nodetool uses it too.
          JMX_PORT: String(jmxPort(ip)),
          // No wait for gossip to settle at start: the seeds answer at once or not at all.
          JVM_EXTRA_OPTS: '-Dcassandra.skip_wait_for_gossip_to_settle=0',
        },
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? cassandra.defaults.volumeSizeMiB, mountPath: DATA },
        ...(journal ? { journal: { id: `${name}-journal`, sizeMiB: spec.journalVolumeSizeMiB!, mountPath: JOURNAL } } : {}),
        dnsName: `${name}.${spec.name}.${ctx.domain}`,
        ip,
        port: CQL_PORT,
        ports: [CQL_PORT, STORAGE_PORT, JMX_EXPORTER_PORT],
        metrics: jmx.metrics,
        configFiles: [
          { path: 'firecampd/cassandra.yaml', content: yaml(spec, ip, seeds, journal) + '\n' },
          { path: 'firecampd/start.sh', content: startScript(name, !isSeed(i), jmx.jvmFlag), mode: 0o755 },
          jmx.configFile,
        ],
        ...memberResources(spec),
      };
    });
  },

  async initialize(_spec, members, ctx) {
    const waiting = (await ringStep(members, ctx)) ?? (await authStep(members, ctx));
    if (waiting) return waiting;
    await markClean(members, ctx);
    return undefined;
  },

  /** After a scale out (or a start after a stop): new members bootstrap one at a time, system_auth follows the ring's size, the others clean up. */
  async join(_spec, members, ctx) {
    return (await ringStep(members, ctx)) ?? (await authStep(members, ctx)) ?? (await cleanupStep(members, ctx));
  },

  /** Before a scale in: each leaving member decommissions (streams its ranges to those that stay), the highest index first. */
  async leave(spec, members, leaving, ctx) {
    const staying = members.filter((m) => !leaving.includes(m));
    const r = await ring(staying, ctx);
    if (!r) return 'waiting for a member that stays to answer nodetool status';
    for (const m of [...leaving].sort((a, b) => memberIndex(b.spec) - memberIndex(a.spec))) {
      const state = r.status.get(m.spec.ip!);
      if (state === undefined) continue;
      if (state === 'UL') return `waiting for ${m.spec.name} to decommission`;
      if (state !== 'UN') return `waiting for ${m.spec.name} to be Up and Normal before it decommissions (${state})`;
      ctx.log.info({ service: spec.name, member: m.spec.name }, 'cassandra: nodetool decommission');
      await nodetool(m, ctx, ['decommission'], 3_600_000);
      return `${m.spec.name} decommissioned`;
    }
    return undefined;
  },

  /** Up and Normal, and every other member so too, as this one sees the ring. */
  async notReady(_spec, m, ctx) {
    try {
      const status = parseStatus(await nodetool(m, ctx, ['status']));
      if (status.get(m.spec.ip!) !== 'UN') return `not Up and Normal in the ring (${status.get(m.spec.ip!) ?? 'not in it'})`;
      const other = [...status].find(([, s]) => s !== 'UN');
      return other ? `sees ${other[0]} ${other[1]}` : undefined;
    } catch (err) {
      return errorMessage(err);
    }
  },

  /** The lowest index first, drained (memtables flushed, no more writes taken) before it stops. */
  async rolloutStep(_spec, _members, pending, ctx): Promise<RolloutStep> {
    const next = [...pending].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))[0];
    await nodetool(next, ctx, ['drain'], 300_000);
    return { restart: next.spec.name };
  },
};

/**
 * The member's start script (POSIX sh, as the image's cassandra user): its
 * datacenter and rack fixed at the first start, the configuration put
 * together in a directory of its volume, and, for a member that bootstraps,
 * the wait for the catalog's go before its first start.
 */
function startScript(name: string, bootstraps: boolean, metricsFlag: string): string {
  return `#!/bin/sh
# Written by firecampd: starts Cassandra as ${name}.
set -eu
S=${STATE}
mkdir -p "$S"
${restoreScript()}if [ ! -f "$S/rackdc.properties" ]; then
  printf 'dc=%s\\nrack=%s\\n' "\${FIRECAMPD_REGION:-default}" "\${FIRECAMPD_ZONE:-default}" > "$S/rackdc.tmp"
  mv "$S/rackdc.tmp" "$S/rackdc.properties"
fi
${
  bootstraps
    ? `if [ ! -f "$S/bootstrap" ] && [ ! -f "$S/tokens" ]; then
  echo "firecampd: waiting for the catalog to let ${name} bootstrap (one member at a time)" >&2
  until [ -f "$S/bootstrap" ]; do sleep 1; done
fi
`
    : ''
}conf="$S/conf"
rm -rf "$conf"
mkdir -p "$conf"
cp -R /etc/cassandra/. "$conf/"
cp ${FIRECAMPD}/cassandra.yaml "$conf/cassandra.yaml"
${restoredConfig()}cp "$S/rackdc.properties" "$conf/cassandra-rackdc.properties"
export CASSANDRA_CONF="$conf"
# Cassandra alone loads the metrics agent: nodetool in this container would fight over its port.
export JVM_EXTRA_OPTS="\${JVM_EXTRA_OPTS:-} ${metricsFlag}"
exec cassandra -f
`;
}
