// Redis, in two shapes:
//
// - a primary/replica set (no cluster mode): member 0 is the primary, the
//   others follow it by its static IP (or its DNS name without static IPs),
//   so that they find it again wherever it runs;
// - cluster mode: shards × (a master and its replicas), a static IP per
//   member announced to the cluster, the cluster formed once every member
//   runs, each replica attached to its shard's master (placement keeps them
//   on other nodes and zones).
//
// Append-only persistence and the cluster's nodes.conf live on the member's
// volume: data and cluster identity survive a move. Every member requires the
// service's generated password (requirepass; masterauth for replication),
// kept in a 0600 file on the volume, never in the member's spec or env.
import type { Redis } from 'ioredis';
import { memberIndex, type MemberSpec } from '../../../agent/members.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import { z } from 'zod';
import {
  memberResources,
  typeOptions,
  type MemberContext,
  type PlacedMember,
  type RolloutStep,
  type ServiceSpec,
  type ServiceSpecInput,
  type ServiceType,
  type TypeContext,
  memberTls,
  servesTls,
  type TypeOptions,
} from '../../types.ts';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../../../security/member-cert.ts';

export const REDIS_PORT = 6379;
/** The Prometheus community's Redis exporter, pinned: each member runs one beside it for its metrics. */
export const REDIS_EXPORTER_IMAGE = 'oliver006/redis_exporter:v1.45.0';
/** Where a member's exporter serves its metrics, on the member's address (the exporter's usual port). */
export const REDIS_EXPORTER_PORT = 9121;
/** The exporter's password file (JSON: the member's URL → the password), beside the member's own. */
const EXPORTER_PASSWORD_FILE = '.exporter-password.json';
const SLOTS = 16_384;
/**
 * How long a cluster member goes unanswered before the others count it failed (and a replica takes over its slots).
 * Longer than a failover takes, so that a master that moves with its data comes back as master: nothing acknowledged
 * is lost. It is also how long a new master waits, once it stops being alone, before it serves (Redis's rejoin delay),
 * so a new cluster forms with a short one (INIT_NODE_TIMEOUT_MS) and gets this one once it is whole.
 */
const NODE_TIMEOUT_MS = 5000;
const INIT_NODE_TIMEOUT_MS = 1000;

/** The node timeout the members' config gives: ours, unless the service's own config lines set another (the last wins). */
function nodeTimeoutOf(spec: ServiceSpec): number {
  const set = [...(spec.config ?? '').matchAll(/^\s*cluster-node-timeout\s+(\d+)\s*$/gm)];
  return set.length > 0 ? Number(set[set.length - 1][1]) : NODE_TIMEOUT_MS;
}

/** The upstream image's user: redis, uid and gid 999. */
const REDIS_USER = '999:999';
/** The file on a member's volume that holds the password, for redis.conf's include and the health check. */
const AUTH_CONF = 'auth.conf';
const PASSWORD_FILE = '.password';
/** The member's certificate, key and the cluster CA, in its volume (the agent's certificate step writes them). */
const TLS_DIR = 'tls';
const TLS = `/data/${TLS_DIR}`;
/** redis-cli's flags for a member that serves TLS: it checks the member's certificate against the cluster CA. */
const cliTls = (tls: boolean) => (tls ? ` --tls --cacert ${TLS}/${CA_FILE}` : '');

/** How the member's exporter reaches it: on its own address, over TLS where it serves TLS. */
const memberUrl = (ip: string | undefined, tls: boolean) => `${tls ? 'rediss' : 'redis'}://${ip ?? '127.0.0.1'}:${REDIS_PORT}`;

/** The member's exporter: the password from a file, the member's certificate checked against the cluster CA. */
function exporter(ip: string | undefined, tls: boolean): NonNullable<MemberSpec['metrics']> {
  return {
    port: REDIS_EXPORTER_PORT,
    exporter: {
      image: REDIS_EXPORTER_IMAGE,
      command: [
        '/redis_exporter',
        `-redis.addr=${memberUrl(ip, tls)}`,
        `-redis.password-file=/data/${EXPORTER_PASSWORD_FILE}`,
        ...(tls ? [`-tls-ca-cert-file=${TLS}/${CA_FILE}`] : []),
        `-web.listen-address=${ip ?? ''}:${REDIS_EXPORTER_PORT}`,
      ],
    },
  };
}

/** Run `fn` on a short-lived connection to member `m` that fails fast instead of retrying; over TLS verified against the cluster CA where the member serves it. */
async function withRedis<T>(m: PlacedMember, ctx: Pick<TypeContext, 'secrets' | 'ca'>, fn: (r: Redis) => Promise<T>): Promise<T> {
  // Imported here, not at the top: only the leader's catalog talks to Redis, and only for a redis service.
  const { Redis } = await import('ioredis');
  if (m.spec.tls && !ctx.ca) throw new Error("the cluster's CA is not in this node's replica yet");
  const password = ctx.secrets.password;
  const r = new Redis({
    host: m.host,
    port: REDIS_PORT,
    ...(password ? { password } : {}),
    // The member's certificate names its address: Node's check of the name dialled holds without a servername.
    ...(m.spec.tls ? { tls: { ca: ctx.ca, rejectUnauthorized: true } } : {}),
    lazyConnect: true,
    connectTimeout: 2000,
    commandTimeout: 5000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  r.on('error', () => {}); // reported through the command's rejection
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

const call = async (r: Redis, ...args: (string | number)[]): Promise<string> => String(await r.call(String(args[0]), ...args.slice(1)));

/** "field:value" lines of INFO or CLUSTER INFO. */
function fields(text: string): Map<string, string> {
  return new Map(
    text.split(/\r?\n/).flatMap((l) => (l.includes(':') ? [[l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()] as [string, string]] : [])),
  );
}

interface ClusterNode {
  id: string;
  host: string;
  flags: string[];
  master: string;
  slots: string[];
}

/** CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…" per line. */
function parseNodes(text: string): ClusterNode[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const f = l.trim().split(' ');
      return { id: f[0], host: f[1].split(':')[0], flags: f[2].split(','), master: f[3], slots: f.slice(8) };
    });
}

/** The slots a node's CLUSTER NODES line lists ("0-5460", "5461", and "[…]" for one migrating, which is left out). */
function slotNumbers(slots: string[]): number[] {
  return slots.flatMap((s) => {
    if (s.startsWith('[')) return [];
    const [a, b] = s.split('-').map(Number);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
}

/** The sub-ranges of lo..hi that a node with these slots does not serve. */
export function missingRanges(lo: number, hi: number, slots: string[]): [number, number][] {
  const own = new Set(slotNumbers(slots));
  const out: [number, number][] = [];
  for (let s = lo; s <= hi; s++) {
    if (own.has(s)) continue;
    if (out.length > 0 && out[out.length - 1][1] === s - 1) out[out.length - 1][1] = s;
    else out.push([s, s]);
  }
  return out;
}

/** Whether every slot the node serves is in lo..hi: it is this shard's (a master whose slots were moved by hand is left alone). */
const ownsWithin = (slots: string[], lo: number, hi: number) => slotNumbers(slots).every((s) => s >= lo && s <= hi);

/**
 * A part that is an RDB of `m`, made in its own container. Through a file on the volume, not stdout: written to a
 * file, redis-cli cuts off the 40-byte end mark of a diskless transfer, which an AOF base must not have.
 */
const rdbPart = (m: PlacedMember, name: string) => ({
  member: m.spec.name,
  name,
  cmd: [
    'sh',
    '-c',
    `f=/data/.firecampd-backup.rdb; REDISCLI_AUTH="$(cat /data/${PASSWORD_FILE})" redis-cli${cliTls(!!m.spec.tls)} -h ${m.spec.ip ?? '127.0.0.1'} -p ${REDIS_PORT} --rdb "$f" >&2 && cat "$f"; rc=$?; rm -f "$f"; exit $rc`,
  ],
});

/** Cluster mode: shards × (a master and its replicas). */
interface ClusterOptions {
  shards: number;
  replicasPerShard: number;
}

const options: TypeOptions<ClusterOptions> = {
  schema: z
    .object({
      shards: z.number().int().min(3, 'a Redis cluster needs at least 3 shards (masters)').max(64),
      replicasPerShard: z.number().int().min(0).max(5),
    })
    .strict(),
  flags: {
    shards: { type: 'number', describe: 'cluster mode: this many masters (at least 3); the member count follows from it' },
    'replicas-per-shard': { type: 'number', describe: 'cluster mode: replicas of each master', defaultDescription: '1' },
  },
  fromFlags(given) {
    if (given['replicas-per-shard'] !== undefined && given.shards === undefined)
      throw new UserError('--replicas-per-shard goes with --shards (Redis cluster mode)');
    if (given.shards === undefined) return undefined;
    return { shards: Number(given.shards), replicasPerShard: Number(given['replicas-per-shard'] ?? 1) };
  },
};

const clusterOf = (spec: ServiceSpecInput) => typeOptions(spec, redis);
const isCluster = (spec: ServiceSpec) => clusterOf(spec) !== undefined;
/** Cluster mode: members per shard; member i starts as its shard's master when i is a multiple of it. */
const perShard = (spec: ServiceSpec) => 1 + (clusterOf(spec)?.replicasPerShard ?? 0);

/** What a member is to Redis now: master or slave. */
async function role(m: PlacedMember, ctx: Pick<TypeContext, 'secrets' | 'ca'>): Promise<string> {
  return withRedis(m, ctx, async (r) => fields(await call(r, 'INFO', 'replication')).get('role') ?? '');
}

export const redis: ServiceType & { options: TypeOptions<ClusterOptions> } = {
  name: 'redis',
  title: 'Redis',
  image: 'redis:7.0',
  defaults: { replicas: 1, volumeSizeMiB: 256 },
  options,
  secrets: ['password'],
  tls: 'clients (the port speaks TLS only), replication and the cluster bus',
  settings: {
    'maxmemory-policy': {
      describe: 'what Redis evicts once maxmemory is reached',
      default: 'noeviction',
      check: (v) =>
        ['noeviction', 'allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl'].includes(v)
          ? undefined
          : 'one of noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru, volatile-lfu, volatile-random, volatile-ttl',
    },
    appendfsync: {
      describe: 'how often the append-only file is fsynced',
      default: 'everysec',
      check: (v) => (['always', 'everysec', 'no'].includes(v) ? undefined : 'one of always, everysec, no'),
    },
    timeout: {
      describe: 'seconds after which an idle client is closed (0: never)',
      default: '0',
      check: (v) => (/^\d{1,6}$/.test(v) ? undefined : 'a whole number of seconds'),
    },
  },

  describeSecret: () => ({ user: 'default', describe: 'the password every client gives (AUTH); replicas use it too' }),

  /**
   * A backup is an RDB of each master (the primary; in cluster mode, the member serving each shard's slots now),
   * made by redis-cli --rdb as a replica would get it (rdb-only: nothing of the master's replication changes), into a
   * file on its volume and streamed from there. A restored service's masters start from them as the base of their
   * append-only file, which Redis 7 loads at start (it ignores a dump.rdb while appendonly is on); in cluster mode
   * each claims the slots of the keys it holds as it loads them, and the cluster's initialization adds the rest of
   * its shard's. Replicas sync as new ones.
   */
  backup: {
    parts: async (spec, members, ctx) => {
      if (!isCluster(spec)) {
        const primary = members.find((m) => memberIndex(m.spec) === 0);
        if (!primary) throw new Error(`${spec.name}-0, the primary, is not placed`);
        return [rdbPart(primary, 'rdb')];
      }
      const parts = [];
      for (let s = 0; s < clusterOf(spec)!.shards; s++) {
        const group = members.filter((m) => Math.floor(memberIndex(m.spec) / perShard(spec)) === s);
        let master: PlacedMember | undefined;
        for (const m of group) {
          const me = await withRedis(m, ctx, async (r) => parseNodes(await call(r, 'CLUSTER', 'NODES')).find((n) => n.flags.includes('myself')));
          if (me?.flags.includes('master') && me.slots.length > 0) master = m;
        }
        if (!master) throw new Error(`no member of shard ${s} (${group.map((m) => m.spec.name).join(', ')}) serves its slots now`);
        parts.push(rdbPart(master, `shard-${s}`));
      }
      return parts;
    },
    check: async (spec, members, ctx) => {
      let keys = 0;
      for (const m of members) {
        const info = await withRedis(m, ctx, async (r) => fields(await call(r, 'INFO', 'replication')));
        if (info.get('role') === 'master') keys += Number(await withRedis(m, ctx, (r) => call(r, 'DBSIZE')));
      }
      return `${keys} keys`;
    },
    restore: (spec, index) => {
      const name = isCluster(spec) ? `shard-${index / perShard(spec)}` : index === 0 ? 'rdb' : undefined;
      const part = spec.restore?.parts.find((p) => p.name === name);
      if (!part) return undefined;
      return {
        parts: [{ index: part.index, name: part.name, path: 'appendonlydir/appendonly.aof.1.base.rdb' }],
        files: [{ path: 'appendonlydir/appendonly.aof.manifest', content: 'file appendonly.aof.1.base.rdb seq 1 type b\n' }],
      };
    },
  },

  normalize(spec: ServiceSpecInput): ServiceSpec {
    const cluster = clusterOf(spec);
    if (cluster) {
      const replicas = cluster.shards * (1 + cluster.replicasPerShard);
      if (spec.replicas !== undefined && spec.replicas !== replicas) {
        throw new UserError(
          `in cluster mode the member count follows from the shards: ${cluster.shards} × (1 + ${cluster.replicasPerShard}) = ${replicas}; leave out --replicas`,
        );
      }
      return { ...spec, replicas };
    }
    return { ...spec, replicas: spec.replicas ?? redis.defaults.replicas };
  },

  needsStaticIps(spec) {
    return isCluster(spec)
      ? 'Redis cluster members announce their own address to the cluster: give firecampd --ip-pool FIRST-LAST (and --static-ips local:IFACE)'
      : undefined;
  },

  cannotScale(spec, replicas) {
    if (isCluster(spec)) return 'a Redis cluster changes size by resharding, which firecampd does not do yet; create a new service with more shards';
    if (replicas < 1) return 'a Redis service needs at least its primary';
    return undefined;
  },

  group(spec, i) {
    return isCluster(spec) ? Math.floor(i / perShard(spec)) : 0;
  },

  members(spec: ServiceSpec, { domain, ips }: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const primary = ips[0] ?? `${spec.name}-0.${spec.name}.${domain}`;
    const tls = servesTls(redis, spec);
    return Array.from({ length: spec.replicas }, (_, i) => {
      const name = `${spec.name}-${i}`;
      const ip = ips[i];
      const conf = [
        // With TLS the one port speaks TLS only (a plaintext client gets no answer it can read), as do replication and
        // the cluster bus (the port + 10000). Clients prove themselves with the password, not a certificate.
        ...(tls
          ? [
              'port 0',
              `tls-port ${REDIS_PORT}`,
              `tls-cert-file ${TLS}/${CERT_FILE}`,
              `tls-key-file ${TLS}/${KEY_FILE}`,
              `tls-ca-cert-file ${TLS}/${CA_FILE}`,
              'tls-auth-clients no',
              'tls-replication yes',
              'tls-cluster yes',
            ]
          : [`port ${REDIS_PORT}`]),
        // Its own address only: members of several services may share a node, each on its own static IP.
        `bind ${ip ?? '0.0.0.0'}`,
        'dir /data',
        `include /data/${AUTH_CONF}`,
        'appendonly yes',
        ...Object.keys(redis.settings).map((k) => `${k} ${spec.settings?.[k] ?? redis.settings[k].default}`),
        ...(spec.memoryMiB ? [`maxmemory ${Math.floor(spec.memoryMiB * 0.8)}mb`] : []),
        ...(isCluster(spec)
          ? ['cluster-enabled yes', 'cluster-config-file nodes.conf', `cluster-node-timeout ${NODE_TIMEOUT_MS}`, `cluster-announce-ip ${ip}`]
          : i > 0
            ? [`replicaof ${primary} ${REDIS_PORT}`]
            : []),
        ...(ip && !isCluster(spec) ? [`replica-announce-ip ${ip}`] : []),
        ...(spec.config ? [spec.config] : []),
      ].join('\n');
      return {
        service: spec.name,
        name,
        image: spec.image ?? redis.image,
        command: ['redis-server', '/data/redis.conf'],
        user: REDIS_USER,
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? redis.defaults.volumeSizeMiB, mountPath: '/data' },
        dnsName: `${name}.${spec.name}.${domain}`,
        ...(ip ? { ip } : {}),
        port: REDIS_PORT,
        // The cluster bus is the client port + 10000, as Redis has it.
        ports: [REDIS_PORT, REDIS_PORT + 10000, REDIS_EXPORTER_PORT],
        // The password is read inside the container: it shows neither in the spec nor in `docker inspect`.
        healthCheck: [
          'sh',
          '-c',
          `REDISCLI_AUTH="$(cat /data/${PASSWORD_FILE})" redis-cli${cliTls(tls)} -h ${ip ?? '127.0.0.1'} -p ${REDIS_PORT} ping | grep -q PONG`,
        ],
        ...memberTls(redis, spec, TLS_DIR),
        metrics: exporter(ip, tls),
        configFiles: [{ path: 'redis.conf', content: conf + '\n' }],
        secretFiles: [
          { path: AUTH_CONF, template: 'requirepass "{{password}}"\nmasterauth "{{password}}"\n' },
          { path: PASSWORD_FILE, template: '{{password}}' },
          { path: EXPORTER_PASSWORD_FILE, template: `{"${memberUrl(ip, tls)}":"{{password}}"}\n` },
        ],
        ...memberResources(spec),
      };
    });
  },

  /**
   * Cluster mode: give each master its slots, have member 0 meet the others,
   * wait until every member knows every other, attach the rest of each shard
   * to the member serving the shard's slots (the one meant to, unless a
   * replica took over while it moved), and wait for cluster_state:ok and
   * for every member to see the same shape. Each step checks first, so a new
   * leader (or the next pass) repeats nothing already done.
   */
  async initialize(spec, members, ctx) {
    if (!isCluster(spec)) return undefined;
    const { log } = ctx;
    const byIndex = [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec));
    const views = await Promise.all(byIndex.map((m) => withRedis(m, ctx, async (r) => ({ m, nodes: parseNodes(await call(r, 'CLUSTER', 'NODES')) }))));
    const myself = (v: (typeof views)[number]) => v.nodes.find((n) => n.flags.includes('myself'))!;
    const shards = clusterOf(spec)!.shards;
    const nodeTimeout = (ms: number) => Promise.all(byIndex.map((m) => withRedis(m, ctx, (r) => call(r, 'CONFIG', 'SET', 'cluster-node-timeout', ms))));
    // A cluster not formed yet: no member has slots.
    if (views.every((v) => myself(v).slots.length === 0)) await nodeTimeout(INIT_NODE_TIMEOUT_MS);
    for (let s = 0; s < shards; s++) {
      const v = views[s * perShard(spec)];
      const me = myself(v);
      if (me.flags.includes('slave')) continue;
      const lo = Math.floor((s * SLOTS) / shards);
      const hi = Math.floor(((s + 1) * SLOTS) / shards) - 1;
      // Only what it lacks of its shard's range: a member restored from a backup claimed the slots of its keys as it loaded them.
      const missing = missingRanges(lo, hi, me.slots);
      if (missing.length === 0 || (me.slots.length > 0 && !ownsWithin(me.slots, lo, hi))) continue;
      await withRedis(v.m, ctx, async (r) => {
        // Distinct config epochs from the start spare the cluster its collision round.
        if (me.slots.length === 0) await call(r, 'CLUSTER', 'SET-CONFIG-EPOCH', s + 1).catch(() => undefined);
        for (const [a, b] of missing) await call(r, 'CLUSTER', 'ADDSLOTSRANGE', a, b);
      });
      log.info({ member: v.m.spec.name, slots: missing.map(([a, b]) => `${a}-${b}`).join(',') }, 'redis cluster: slots assigned');
    }
    const first = views[0];
    const known = new Set(first.nodes.map((n) => n.id));
    const strangers = views.slice(1).filter((v) => !known.has(myself(v).id));
    if (strangers.length > 0) {
      await withRedis(first.m, ctx, async (r) => {
        for (const v of strangers) await call(r, 'CLUSTER', 'MEET', v.m.host, REDIS_PORT);
      });
      return `introducing ${strangers.length} members to the cluster`;
    }
    const incomplete = views.filter((v) => v.nodes.filter((n) => !n.flags.includes('handshake') && !n.flags.includes('noaddr')).length < views.length);
    if (incomplete.length > 0) return `waiting for ${incomplete.length} members to learn of every other`;
    let attaching = 0;
    for (let s = 0; s < shards; s++) {
      const shard = views.slice(s * perShard(spec), (s + 1) * perShard(spec));
      // The shard's master is whichever member serves its slots: while a member moved, one of its replicas may have taken over.
      const master = shard.find((v) => myself(v).slots.length > 0) ?? shard[0];
      const masterId = myself(master).id;
      for (const v of shard) {
        const me = myself(v);
        if (me.id === masterId || (me.flags.includes('slave') && me.master === masterId)) continue;
        attaching++;
        await withRedis(v.m, ctx, (r) => call(r, 'CLUSTER', 'REPLICATE', masterId));
        log.info({ member: v.m.spec.name, master: master.m.spec.name }, 'redis cluster: replica attached');
      }
    }
    if (attaching > 0) return `attaching ${attaching} replicas to their masters`;
    const notOk = [];
    for (const m of byIndex)
      if ((await withRedis(m, ctx, async (r) => fields(await call(r, 'CLUSTER', 'INFO')))).get('cluster_state') !== 'ok') notOk.push(m.spec.name);
    if (notOk.length > 0) return `waiting for cluster_state:ok on ${notOk.join(', ')}`;
    // Done only when gossip has told every member the same shape: a master with slots per shard, the rest its replicas, nobody failing.
    const unsettled = views.filter((v) => {
      const healthy = v.nodes.every((n) => !n.flags.some((f) => ['fail', 'fail?', 'handshake', 'noaddr'].includes(f)));
      const masters = v.nodes.filter((n) => n.flags.includes('master') && n.slots.length > 0).length;
      const replicas = v.nodes.filter((n) => n.flags.includes('slave')).length;
      return !(healthy && v.nodes.length === views.length && masters === shards && replicas === views.length - shards);
    });
    if (unsettled.length > 0) return `waiting for ${unsettled.map((v) => v.m.spec.name).join(', ')} to see every shard's master and replicas`;
    await nodeTimeout(nodeTimeoutOf(spec));
    return undefined;
  },

  async notReady(spec, m, ctx) {
    try {
      return await withRedis(m, ctx, async (r) => {
        if ((await call(r, 'PING')) !== 'PONG') return 'does not answer PING';
        const info = fields(await call(r, 'INFO', 'replication'));
        if (info.get('role') === 'slave' && info.get('master_link_status') !== 'up') return 'replica not in sync with its master yet';
        if (isCluster(spec) && fields(await call(r, 'CLUSTER', 'INFO')).get('cluster_state') !== 'ok') return 'cluster_state is not ok';
        return undefined;
      });
    } catch (err) {
      return errorMessage(err);
    }
  },

  /**
   * Replicas first. A master goes last, and in cluster mode only after one
   * of its rolled replicas took over (CLUSTER FAILOVER), so that its shard
   * keeps answering; it then restarts as a replica. A primary without cluster
   * mode restarts in place: writes pause for that restart.
   */
  async rolloutStep(spec, members, pending, ctx): Promise<RolloutStep> {
    const { log } = ctx;
    const todo = [...pending].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec));
    const done = (name: string) => !pending.some((p) => p.spec.name === name);
    const roles = new Map(await Promise.all(members.map(async (m) => [m.spec.name, await role(m, ctx)] as const)));
    const replica = todo.find((m) => roles.get(m.spec.name) === 'slave');
    if (replica) return { restart: replica.spec.name };
    const master = todo[0];
    if (!isCluster(spec)) return { restart: master.spec.name };
    const masterId = await withRedis(master, ctx, (r) => call(r, 'CLUSTER', 'MYID'));
    for (const m of members) {
      if (!done(m.spec.name) || roles.get(m.spec.name) !== 'slave') continue;
      const me = await withRedis(m, ctx, async (r) => parseNodes(await call(r, 'CLUSTER', 'NODES')).find((n) => n.flags.includes('myself'))!);
      if (me.master !== masterId) continue;
      await withRedis(m, ctx, (r) => call(r, 'CLUSTER', 'FAILOVER'));
      log.info({ from: master.spec.name, to: m.spec.name }, 'redis cluster: failing over to a rolled replica before rolling the master');
      return { wait: `${m.spec.name} taking over from ${master.spec.name}` };
    }
    return { restart: master.spec.name }; // a shard without replicas: it pauses for the restart
  },
};
