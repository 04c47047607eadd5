// PostgreSQL: one primary and streaming standbys.
//
// Which member is the primary is the catalog's to say: the type state keeps
// it (member 0 at first), every member's start script is written for its
// role, and `primary.<service>.<domain>` points at it. A standby clones the
// primary by that name (pg_basebackup), streams from it through a slot of
// its own, and follows it across timelines. When the primary's node dies the
// primary comes back elsewhere with its volume, address and name, as every
// member does; the standbys reconnect to it.
//
// A rollout (upgrade, restart, config change) goes standbys first, one at a
// time, each streaming again before the next; then a switchover: the primary
// stops cleanly (its standbys get its whole log first), the standby that has
// the most of it is promoted, the primary's name moves to it, and the old
// primary restarts as a standby of it (pg_rewind where it must).
//
// Passwords (the postgres superuser's, the replication user's) come from the
// service's secrets, into 0600 files on the volume.
import type pg from 'pg';
import { z } from 'zod';
import { memberIndex, type MemberSpec } from '../../../agent/members.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import {
  memberResources,
  typeOptions,
  type MemberContext,
  type MemberRole,
  type PlacedMember,
  type RolloutStep,
  type ServiceSpec,
  type ServiceSpecInput,
  type ServiceType,
  type TypeContext,
  type TypeOptions,
  memberTls,
  servesTls,
} from '../../types.ts';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../../../security/member-cert.ts';

export const PG_PORT = 5432;
/** The Prometheus community's PostgreSQL exporter, pinned: each member runs one beside it for its metrics. */
export const PG_EXPORTER_IMAGE = 'quay.io/prometheuscommunity/postgres-exporter:v0.11.1';
/** Where a member's exporter serves its metrics, on the member's address (the exporter's usual port). */
export const PG_EXPORTER_PORT = 9187;
/** The role the exporter logs in as: pg_monitor's rights, no more. */
const EXPORTER_ROLE = 'exporter';
/** Its password, for the exporter's DATA_SOURCE_PASS_FILE (no newline: the exporter takes the file whole). */
const EXPORTER_PASSWORD_FILE = '.exporter-password';
/** The upstream image's postgres user. */
const PG_USER = '999:999';
const DATA = '/data';
/** The member's certificate, key and the cluster CA, in its data volume (the agent's certificate step writes them). */
const TLS_DIR = 'tls';
const TLS = `${DATA}/${TLS_DIR}`;
const JOURNAL = '/journal';
const PGDATA = `${DATA}/pgdata`;
/** Where the archive command leaves each finished WAL file for the node to ship (relative to the volume). */
const WAL_SPOOL = 'wal-spool';
/** What a restore leaves beside the data for the first start: the archived WAL to replay, and the recovery settings. */
const RESTORE_DIR = '.firecampd-restore';
/** A finished WAL file reaches the archive at most this long after its first write, however little is written. */
const ARCHIVE_TIMEOUT_S = 60;
/** A standby is caught up enough for the next step of a rollout within this many bytes of the primary's log. */
const CAUGHT_UP_BYTES = 16 << 20;

/** The least disk the WAL needs (its budget is a share of its disk, two 16 MiB segments at least, and a promotion writes more). */
const MIN_WAL_DISK_MIB = 128;

/** Why the volumes cannot hold the WAL a member writes, naming the flag to raise; undefined if they can. */
function tooSmall(spec: ServiceSpecInput): string | undefined {
  if (spec.journalVolumeSizeMiB !== undefined)
    return spec.journalVolumeSizeMiB < MIN_WAL_DISK_MIB
      ? `--journal-volume-size ${spec.journalVolumeSizeMiB} MiB cannot hold PostgreSQL's WAL: give ${MIN_WAL_DISK_MIB} at least`
      : undefined;
  // Without a journal the WAL has half of the data volume.
  const volume = spec.volumeSizeMiB ?? postgres.defaults.volumeSizeMiB;
  return volume < 2 * MIN_WAL_DISK_MIB
    ? `--volume-size ${volume} MiB cannot hold PostgreSQL's data and its WAL (half of the volume without a journal): give ${2 * MIN_WAL_DISK_MIB} at least, or a --journal-volume-size of ${MIN_WAL_DISK_MIB} or more for the WAL`
    : undefined;
}

const primaryOf = (spec: ServiceSpec, state: TypeContext['state']) => (state.primary as string | undefined) ?? `${spec.name}-0`;
/** Replication slot names take [a-z0-9_] only. */
export const slotName = (member: string) => member.replace(/-/g, '_');

/** Run `fn` on a short-lived superuser connection to member `m`: over TLS verified against the cluster CA where the member serves it. */
async function withPg<T>(m: PlacedMember, ctx: TypeContext, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  // Imported here, not at the top: only the leader's catalog talks to PostgreSQL, and only for a postgres service.
  const { Client } = (await import('pg')).default;
  if (m.spec.tls && !ctx.ca) throw new Error("the cluster's CA is not in this node's replica yet");
  const c = new Client({
    host: m.host,
    port: PG_PORT,
    user: 'postgres',
    password: ctx.secrets.superuser,
    // The member's certificate names its address: Node's check of the name dialled holds without a servername.
    ssl: m.spec.tls ? { ca: ctx.ca, rejectUnauthorized: true } : false,
    database: 'postgres',
    connectionTimeoutMillis: 3000,
    statement_timeout: 10_000,
    query_timeout: 15_000,
  });
  c.on('error', () => {}); // reported through the query's rejection
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

const one = async <T>(c: pg.Client, sql: string, params: unknown[] = []): Promise<T> => (await c.query(sql, params)).rows[0] as T;

const inRecovery = async (c: pg.Client) => (await one<{ r: boolean }>(c, 'SELECT pg_is_in_recovery() AS r')).r;

/** The primary's view of its standbys: streaming state and bytes behind, by application name (the member's name). */
async function replication(c: pg.Client): Promise<Map<string, { state: string; lag: number }>> {
  const rows = (
    await c.query<{ name: string; state: string; lag: string | null }>(
      'SELECT application_name AS name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS lag FROM pg_stat_replication',
    )
  ).rows;
  return new Map(rows.map((r) => [r.name, { state: r.state, lag: r.lag === null ? Number.MAX_SAFE_INTEGER : Number(r.lag) }]));
}

const sqlLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;
const quoteIdent = (s: string) => `"${s.replace(/"/g, '""')}"`;

function settingNumber(v: string, unit: RegExp, what: string): string | undefined {
  return unit.test(v) ? undefined : what;
}

/** A commit is acknowledged once this many standbys have it. */
interface PostgresOptions {
  syncStandbys: number;
}

const options: TypeOptions<PostgresOptions> = {
  schema: z.object({ syncStandbys: z.number().int().min(0).max(16) }).strict(),
  flags: {
    'sync-standbys': {
      type: 'number',
      describe: 'a commit is acknowledged once this many standbys have it',
      defaultDescription: '0: commits do not wait for standbys',
    },
  },
  fromFlags: (given) => (given['sync-standbys'] === undefined ? undefined : { syncStandbys: Number(given['sync-standbys']) }),
};

const syncStandbysOf = (spec: ServiceSpecInput) => typeOptions(spec, postgres)?.syncStandbys ?? 0;

export const postgres: ServiceType & { options: TypeOptions<PostgresOptions> } = {
  name: 'postgres',
  title: 'PostgreSQL',
  image: 'postgres:15',
  defaults: { replicas: 1, volumeSizeMiB: 1024 },
  journal: 'the write-ahead log (pg_wal)',
  tls: 'clients (hostssl only: plaintext refused) and replication (verify-full)',
  options,
  secrets: ['superuser', 'replication', 'monitor'],
  settings: {
    max_connections: { describe: 'most client connections at once', default: '100', check: (v) => settingNumber(v, /^\d{1,5}$/, 'a whole number') },
    shared_buffers: {
      describe: "memory for PostgreSQL's page cache",
      default: '128MB',
      check: (v) => settingNumber(v, /^\d+(kB|MB|GB)$/, 'a size such as 256MB'),
    },
    work_mem: {
      describe: 'memory per sort or hash before it spills to disk',
      default: '4MB',
      check: (v) => settingNumber(v, /^\d+(kB|MB|GB)$/, 'a size such as 8MB'),
    },
    maintenance_work_mem: { describe: 'memory for VACUUM and CREATE INDEX', default: '64MB', check: (v) => settingNumber(v, /^\d+(kB|MB|GB)$/, 'a size') },
    effective_cache_size: { describe: "the planner's idea of the OS page cache", default: '4GB', check: (v) => settingNumber(v, /^\d+(kB|MB|GB)$/, 'a size') },
    log_min_duration_statement: {
      describe: 'log statements slower than this many ms (-1: none)',
      default: '-1',
      check: (v) => settingNumber(v, /^-?\d{1,9}$/, 'milliseconds, or -1'),
    },
  },

  describeSecret: (name) =>
    name === 'superuser'
      ? { user: 'postgres', describe: 'the superuser' }
      : name === 'monitor'
        ? { user: EXPORTER_ROLE, describe: "the metrics exporter's user (pg_monitor's rights)" }
        : { user: 'replicator', describe: 'the replication user (standbys and pg_rewind use it; allowed from members only)' },

  normalize(spec: ServiceSpecInput): ServiceSpec {
    const replicas = spec.replicas ?? postgres.defaults.replicas;
    const sync = syncStandbysOf(spec);
    if (sync > replicas - 1) {
      throw new UserError(
        `--sync-standbys ${sync} needs at least ${sync} standbys, and ${replicas} members have ${replicas - 1}: raise --replicas to ${sync + 1} or lower --sync-standbys`,
      );
    }
    const why = tooSmall(spec);
    if (why) throw new UserError(why);
    return { ...spec, replicas };
  },

  initialState: (spec) => ({ primary: `${spec.name}-0` }),

  needsStaticIps: () => undefined,

  cannotScale(spec, replicas, state) {
    if (replicas < 1) return 'a PostgreSQL service needs at least its primary';
    const sync = syncStandbysOf(spec);
    if (sync > replicas - 1) return `--sync-standbys is ${sync}: keep at least ${sync + 1} members`;
    const primary = primaryOf(spec, state);
    if (memberIndex({ name: primary }) >= replicas)
      return `${primary} is the primary and would go: keep at least ${memberIndex({ name: primary }) + 1} members (a restart moves the primary to a lower member only by chance)`;
    return undefined;
  },

  group: () => 0,

  aliases: (spec, state, domain) => [{ name: `primary.${spec.name}.${domain}`, member: primaryOf(spec, state) }],

  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const primaryHost = `primary.${spec.name}.${ctx.domain}`;
    const names = Array.from({ length: spec.replicas }, (_, i) => `${spec.name}-${i}`);
    // Replication only from the members: their static IPs, and the nodes they run on (a connection leaves from the node's own address).
    const from = [...new Set([...ctx.ips.slice(0, spec.replicas).filter((ip): ip is string => ip !== undefined), ...ctx.nodeAddrs])];
    const tls = servesTls(postgres, spec);
    // With TLS, only encrypted connections match a network line: a plaintext one finds no entry and is refused.
    const host = tls ? 'hostssl' : 'host';
    const hba = [
      '# Written by firecampd: replication from the members only, passwords (SCRAM) over the network.',
      'local all postgres peer',
      // The base backups: pg_basebackup in the primary's own container, over its socket.
      'local replication postgres peer',
      'local all all scram-sha-256',
      ...from.map((a) => `${host} replication replicator ${a}/32 scram-sha-256`),
      `${host} all all 0.0.0.0/0 scram-sha-256`,
    ].join('\n');
    const sync = syncStandbysOf(spec);
    const journal = spec.journalVolumeSizeMiB !== undefined;
    // The log's share of its disk: checkpoints come before it grows past a quarter, standbys are kept an eighth, and
    // a slot whose standby fell behind by half is given up rather than fill the disk (that standby then clones again).
    const walDiskMiB = spec.journalVolumeSizeMiB ?? Math.floor((spec.volumeSizeMiB ?? postgres.defaults.volumeSizeMiB) / 2);
    // PostgreSQL wants both bounds at two 16 MiB segments at least.
    const maxWal = Math.max(64, Math.floor(walDiskMiB / 4));
    return names.map((name, i) => {
      const ip = ctx.ips[i];
      const conf = [
        '# Written by firecampd; change settings with "firecampd service config".',
        `listen_addresses = '${ip ?? '*'}'`,
        `port = ${PG_PORT}`,
        `hba_file = '${DATA}/pg_hba.conf'`,
        "unix_socket_directories = '/var/run/postgresql'",
        'wal_level = replica',
        'max_wal_senders = 16',
        'max_replication_slots = 16',
        `max_wal_size = '${maxWal}MB'`,
        `min_wal_size = '${Math.max(32, Math.min(80, Math.floor(maxWal / 2)))}MB'`,
        `wal_keep_size = '${Math.floor(walDiskMiB / 8)}MB'`,
        `max_slot_wal_keep_size = '${Math.floor(walDiskMiB / 2)}MB'`,
        'wal_log_hints = on',
        'hot_standby = on',
        'hot_standby_feedback = on',
        "password_encryption = 'scram-sha-256'",
        ...(tls ? ['ssl = on', `ssl_cert_file = '${TLS}/${CERT_FILE}'`, `ssl_key_file = '${TLS}/${KEY_FILE}'`, `ssl_ca_file = '${TLS}/${CA_FILE}'`] : []),
        // A commit waits for this many standbys; the list holds every member, since any of them may be the primary later.
        sync > 0 ? `synchronous_standby_names = 'ANY ${sync} (${names.map(quoteIdent).join(', ')})'` : "synchronous_standby_names = ''",
        // Used only while standby.signal is there: stream from whichever member is the primary now, through this member's slot.
        `primary_conninfo = ${sqlLiteral(
          `host=${primaryHost} port=${PG_PORT} user=replicator passfile=${DATA}/.pgpass application_name=${name} connect_timeout=5${
            tls ? ` sslmode=verify-full sslrootcert=${TLS}/${CA_FILE}` : ''
          }`,
        )}`,
        `primary_slot_name = '${slotName(name)}'`,
        "recovery_target_timeline = 'latest'",
        // Continuous archiving: each finished WAL file into the spool, shipped from there by the node (see archive.sh).
        'archive_mode = on',
        `archive_command = 'sh ${DATA}/archive.sh "%p" "%f"'`,
        `archive_timeout = ${ARCHIVE_TIMEOUT_S}`,
        // A restored service's first start replays the archived WAL with these settings, as long as recovery.signal is there.
        ...(spec.restore ? [`include_if_exists = '${DATA}/${RESTORE_DIR}/recovery.conf'`] : []),
        ...Object.entries(postgres.settings).map(([k, s]) => `${k} = ${sqlLiteral(spec.settings?.[k] ?? s.default ?? '')}`),
        ...(spec.config ? [spec.config] : []),
      ].join('\n');
      return {
        service: spec.name,
        name,
        image: spec.image ?? postgres.image,
        command: ['sh', `${DATA}/start.sh`],
        user: PG_USER,
        // Fast shutdown: clients are cut, and the standbys get every byte of the log before it exits.
        stopSignal: 'SIGINT',
        // The tools in the container (pg_basebackup and pg_rewind from the primary) verify it as replication does.
        env: { PGPASSFILE: `${DATA}/.pgpass`, ...(tls ? { PGSSLMODE: 'verify-full', PGSSLROOTCERT: `${TLS}/${CA_FILE}` } : {}) },
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? postgres.defaults.volumeSizeMiB, mountPath: DATA },
        ...(journal ? { journal: { id: `${name}-journal`, sizeMiB: spec.journalVolumeSizeMiB!, mountPath: JOURNAL } } : {}),
        dnsName: `${name}.${spec.name}.${ctx.domain}`,
        ...(ip ? { ip } : {}),
        port: PG_PORT,
        ports: [PG_PORT, PG_EXPORTER_PORT],
        metrics: exporter(ip, tls),
        ...memberTls(postgres, spec, TLS_DIR, [primaryHost]),
        healthCheck: ['pg_isready', '-q', '-h', ip ?? '127.0.0.1', '-p', String(PG_PORT)],
        configFiles: [
          { path: 'postgresql.conf', content: conf + '\n' },
          { path: 'pg_hba.conf', content: hba + '\n' },
          { path: 'start.sh', content: startScript(`${name}.${spec.name}.${ctx.domain}`, primaryHost, journal), mode: 0o755 },
          { path: 'archive.sh', content: ARCHIVE_SCRIPT, mode: 0o755 },
        ],
        secretFiles: [
          { path: '.pgpass', template: `*:*:*:replicator:{{replication}}\n*:*:*:postgres:{{superuser}}\n` },
          { path: '.superuser-password', template: '{{superuser}}\n' },
          { path: EXPORTER_PASSWORD_FILE, template: '{{monitor}}' },
          // Run once, in single-user mode, right after initdb: one statement per line.
          { path: '.init.sql', template: `CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '{{replication}}';\n${exporterRoleSql('{{monitor}}')}\n` },
        ],
        ...memberResources(spec),
      };
    });
  },

  /**
   * A backup is a base backup of the primary (pg_basebackup in its container, a tar of the data directory with the
   * WAL it needs to be consistent), and the primary's WAL is archived continuously from then on: a restore replays
   * it to its end or to a moment (`--to-time`). A restored service's primary starts from the base backup in archive
   * recovery, replaying the archived WAL the restore fetched beside it, then is promoted; its standbys clone it.
   */
  backup: {
    parts: (spec, members, ctx) => {
      const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
      if (!primary) return Promise.reject(new Error(`${primaryOf(spec, ctx.state)}, the primary, is not placed`));
      return Promise.resolve([
        {
          member: primary.spec.name,
          name: 'base',
          // Without its WAL (-X none): that comes from the archive, which PostgreSQL never lets fall behind what it
          // recycles (fetching it instead races checkpoints that recycle it mid-backup).
          cmd: [
            'pg_basebackup',
            '-h',
            '/var/run/postgresql',
            '-p',
            String(PG_PORT),
            '-U',
            'postgres',
            '-D',
            '-',
            '-Ft',
            '-X',
            'none',
            '-c',
            'fast',
            '--no-manifest',
          ],
        },
      ]);
    },
    restore: (spec, index) => {
      const base = spec.restore?.parts.find((p) => p.name === 'base');
      if (index !== 0 || !base) return undefined;
      const recovery = [
        '# Written by firecampd for the first start of a restored service: archive recovery, then promotion.',
        `restore_command = 'cp ${DATA}/${RESTORE_DIR}/wal/%f "%p"'`,
        // PostgreSQL reads "2026-12-07 14:30:00.123+00", not the T and Z of RFC 3339.
        ...(spec.restore?.toTime
          ? [
              `recovery_target_time = '${new Date(spec.restore.toTime).toISOString().replace('T', ' ').replace('Z', '+00')}'`,
              "recovery_target_action = 'promote'",
            ]
          : []),
      ].join('\n');
      return {
        parts: [{ index: base.index, name: 'base', path: 'pgdata', unpack: 'tar' }],
        files: [
          { path: 'pgdata/recovery.signal', content: '' },
          { path: `${RESTORE_DIR}/recovery.conf`, content: recovery + '\n' },
          { path: '.firecampd-data-ready', content: '' },
        ],
        archive: { path: `${RESTORE_DIR}/wal` },
      };
    },
    check: async (spec, members, ctx) => {
      const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
      if (!primary) throw new Error(`${primaryOf(spec, ctx.state)}, the primary, is not placed`);
      const r = await withPg(primary, ctx, (c) =>
        one<{ tables: string; mib: string }>(
          c,
          "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')) AS tables, (SELECT sum(pg_database_size(oid)) / 1048576 FROM pg_database)::int AS mib",
        ),
      );
      return `${r.tables} tables, ${r.mib} MiB in all databases`;
    },
    archive: {
      spool: WAL_SPOOL,
      position: async (spec, members, ctx) => {
        const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
        if (!primary) throw new Error(`${primaryOf(spec, ctx.state)}, the primary, is not placed`);
        return withPg(primary, ctx, async (c) => (await one<{ f: string }>(c, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).f);
      },
      flush: async (spec, members, ctx) => {
        const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
        if (!primary) throw new Error(`${primaryOf(spec, ctx.state)}, the primary, is not placed`);
        return withPg(primary, ctx, async (c) => (await one<{ f: string }>(c, 'SELECT pg_walfile_name(pg_switch_wal()) AS f')).f);
      },
      replay: walReplay,
      precedes: (name, from) => /^[0-9A-F]{24}/.test(name) && segmentNumber(name) < segmentNumber(from),
    },
  },

  /** The primary takes writes, every standby streams from it through its slot. */
  async initialize(spec, members, ctx) {
    await postgres.maintain!(spec, members, ctx);
    const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
    if (!primary) return 'waiting for the primary to be placed';
    const streams = await withPg(primary, ctx, async (c) => {
      if (await inRecovery(c)) throw new Error(`${primary.spec.name} is meant to be the primary but is in recovery`);
      return replication(c);
    });
    const behind = members.filter((m) => m !== primary && streams.get(m.spec.name)?.state !== 'streaming').map((m) => m.spec.name);
    return behind.length > 0 ? `waiting for ${behind.join(', ')} to stream from ${primary.spec.name}` : undefined;
  },

  /** One replication slot on the primary per other member; the slots of members that are gone are dropped. */
  async maintain(spec, members, ctx) {
    const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
    if (!primary) return;
    await ensureSlots(primary, members, ctx);
    await ensureExporterRole(primary, ctx);
  },

  async notReady(spec, m, ctx) {
    try {
      return await withPg(m, ctx, async (c) => {
        if (!(await inRecovery(c))) return undefined;
        const r = await one<{ status: string | null } | undefined>(c, 'SELECT status FROM pg_stat_wal_receiver');
        return r?.status === 'streaming' ? undefined : 'standby not streaming from the primary yet';
      });
    } catch (err) {
      return errorMessage(err);
    }
  },

  async roles(spec, members, ctx) {
    const primary = members.find((m) => m.spec.name === primaryOf(spec, ctx.state));
    const none = new Map<string, { state: string; lag: number }>();
    const streams = primary ? await withPg(primary, ctx, replication).catch(() => none) : none;
    const out: Record<string, MemberRole> = {};
    for (const m of members) {
      if (m === primary) out[m.spec.name] = { role: 'primary', lagBytes: 0 };
      else {
        const s = streams.get(m.spec.name);
        out[m.spec.name] = s ? { role: s.state === 'streaming' ? 'standby' : `standby (${s.state})`, lagBytes: s.lag } : { role: 'standby (not streaming)' };
      }
    }
    return out;
  },

  /**
   * Standbys first, lowest index first, each streaming again and caught up
   * before the next; the primary last, by a switchover to the most advanced
   * standby. A primary alone restarts in place.
   *
   * The switchover stops the primary first (fast shutdown: its walsenders
   * hand every standby the whole log, down to the shutdown checkpoint, before
   * it exits), then promotes the standby that replayed the most. The new
   * timeline thus forks after everything the old primary wrote, and every
   * other standby, and the old primary itself, can follow it.
   */
  async rolloutStep(spec, members, pending, ctx): Promise<RolloutStep> {
    const primaryName = primaryOf(spec, ctx.state);
    const primary = members.find((m) => m.spec.name === primaryName)!;
    if (primary.spec.stopped) return promoteAfterStop(primary, members, ctx);
    const streams = await withPg(primary, ctx, replication);
    const lagging = members.filter((m) => m !== primary && (streams.get(m.spec.name)?.lag ?? Infinity) > CAUGHT_UP_BYTES);
    const standby = [...pending].filter((m) => m !== primary).sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))[0];
    if (lagging.length > 0) return { wait: `waiting for ${lagging.map((m) => m.spec.name).join(', ')} to catch up with ${primaryName}` };
    if (standby) return { restart: standby.spec.name };
    if (members.length === 1) return { restart: primaryName };
    const streaming = members.filter((m) => m !== primary && streams.get(m.spec.name)?.state === 'streaming');
    if (streaming.length === 0) return { wait: `no standby streams from ${primaryName}: cannot switch over` };
    ctx.log.info({ service: spec.name, from: primaryName }, 'postgres switchover: stopping the primary (its standbys get its whole log first)');
    return { stop: primaryName };
  },
};

/** One replication slot on the primary per other member; the slots of members that are gone are dropped. */
async function ensureSlots(primary: PlacedMember, members: PlacedMember[], ctx: TypeContext): Promise<void> {
  const service = primary.spec.service;
  await withPg(primary, ctx, async (c) => {
    if (await inRecovery(c)) return;
    const want = new Set(members.filter((m) => m.spec.name !== primary.spec.name).map((m) => slotName(m.spec.name)));
    const have = (await c.query<{ slot_name: string; active: boolean }>('SELECT slot_name, active FROM pg_replication_slots')).rows;
    for (const s of want) {
      if (have.some((h) => h.slot_name === s)) continue;
      await c.query('SELECT pg_create_physical_replication_slot($1, true)', [s]);
      ctx.log.info({ service, slot: s }, 'postgres: replication slot created');
    }
    const ours = new RegExp(`^${slotName(service)}_\\d+$`);
    for (const h of have) {
      if (want.has(h.slot_name) || !ours.test(h.slot_name) || h.active) continue;
      await c.query('SELECT pg_drop_replication_slot($1)', [h.slot_name]);
      ctx.log.info({ service, slot: h.slot_name }, 'postgres: replication slot of a member that is gone dropped');
    }
  });
}

/** The exporter's role, made with its password; one line (the single-user mode of .init.sql runs a line each). */
const exporterRoleSql = (password: string) => `CREATE ROLE ${EXPORTER_ROLE} WITH LOGIN PASSWORD '${password}' IN ROLE pg_monitor;`;

/** The exporter's role exists on the primary: made at initdb, but a service restored from an older backup lacks it. Idempotent. */
async function ensureExporterRole(primary: PlacedMember, ctx: TypeContext): Promise<void> {
  const password = ctx.secrets.monitor;
  if (!password) return;
  await withPg(primary, ctx, async (c) => {
    if (await inRecovery(c)) return;
    if ((await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [EXPORTER_ROLE])).rowCount) return;
    // The password is one of ours (newSecret: [A-Za-z0-9_-]), safe in a literal; CREATE ROLE takes no parameters.
    await c.query(exporterRoleSql(password));
    ctx.log.info({ service: primary.spec.service }, 'postgres: the metrics exporter role made');
  });
}

/** The member's exporter: as the exporter role, password from a file, the member's certificate verified against the cluster CA. */
function exporter(ip: string | undefined, tls: boolean): NonNullable<MemberSpec['metrics']> {
  const ssl = tls ? `sslmode=verify-full&sslrootcert=${TLS}/${CA_FILE}` : 'sslmode=disable';
  return {
    port: PG_EXPORTER_PORT,
    exporter: {
      image: PG_EXPORTER_IMAGE,
      command: ['/bin/postgres_exporter', `--web.listen-address=${ip ?? ''}:${PG_EXPORTER_PORT}`],
      env: {
        DATA_SOURCE_URI: `${ip ?? '127.0.0.1'}:${PG_PORT}/postgres?${ssl}`,
        DATA_SOURCE_USER: EXPORTER_ROLE,
        DATA_SOURCE_PASS_FILE: `${DATA}/${EXPORTER_PASSWORD_FILE}`,
      },
    },
  };
}

/** The archive command: a finished WAL file is copied into the spool, synced, and renamed into place, whole. */
const ARCHIVE_SCRIPT = `#!/bin/sh
# Written by firecampd: PostgreSQL's archive_command ("%p" "%f"). The node ships the spool's files to the backup target.
set -eu
SPOOL=${DATA}/${WAL_SPOOL}
mkdir -p "$SPOOL"
cp "$1" "$SPOOL/.$2"
sync "$SPOOL/.$2"
mv "$SPOOL/.$2" "$SPOOL/$2"
sync "$SPOOL"
`;

/** A WAL segment's number along the log (16 MiB segments: 256 to a log id), whatever its timeline. */
const segmentNumber = (name: string) => parseInt(name.slice(8, 16), 16) * 256 + parseInt(name.slice(16, 24), 16);

/**
 * Of the WAL files archived, those a restore from a base backup starting in `from` replays: every timeline history
 * file, and the segments from `from`'s on (of its timeline or a later one), as long as no segment number is missing.
 */
export function walReplay(from: string, names: string[]): { files: string[]; gapAfter?: string } {
  const timeline = parseInt(from.slice(0, 8), 16);
  const first = segmentNumber(from);
  const history = names.filter((n) => /^[0-9A-F]{8}\.history$/.test(n));
  const segments = names.filter((n) => /^[0-9A-F]{24}$/.test(n) && parseInt(n.slice(0, 8), 16) >= timeline && segmentNumber(n) >= first);
  const bySegment = new Map<number, string[]>();
  for (const n of segments) bySegment.set(segmentNumber(n), [...(bySegment.get(segmentNumber(n)) ?? []), n]);
  const files: string[] = [];
  let at = first;
  while (bySegment.has(at)) files.push(...bySegment.get(at++)!);
  const beyond = segments.some((n) => segmentNumber(n) > at);
  return { files: [...history, ...files], ...(beyond ? { gapAfter: files.at(-1) ?? from } : {}) };
}

/** An LSN ("16/B374D848") as a number that orders like the log. */
const lsn = (text: string | null): bigint => {
  if (!text) return -1n;
  const [hi, lo] = text.split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
};

/**
 * The second half of a switchover, once the old primary has stopped: the
 * standby that replayed the most is promoted, the primary's name moves to it
 * and the old primary restarts as a standby. Done again from the start by a
 * new leader, it finds a standby promoted already and only records it.
 */
async function promoteAfterStop(old: PlacedMember, members: PlacedMember[], ctx: TypeContext): Promise<RolloutStep> {
  if (!ctx.released(old.spec.name)) return { wait: `waiting for ${old.spec.name} to stop` };
  const standbys = members.filter((m) => m !== old);
  const seen = await Promise.all(
    standbys.map(async (m) => {
      const r = await withPg(m, ctx, (c) =>
        one<{ recovering: boolean; received: string | null; replayed: string | null }>(
          c,
          'SELECT pg_is_in_recovery() AS recovering, pg_last_wal_receive_lsn()::text AS received, pg_last_wal_replay_lsn()::text AS replayed',
        ),
      ).catch(() => undefined);
      return { m, r };
    }),
  );
  const promoted = seen.find((x) => x.r && !x.r.recovering);
  if (promoted) return { restart: old.spec.name, state: { primary: promoted.m.spec.name } };
  const candidates = seen.filter((x) => x.r !== undefined);
  if (candidates.length === 0) return { wait: `no standby answers: cannot promote one in place of ${old.spec.name}` };
  // The most advanced by what it received; a lower index on a tie. It replays all of that before it is promoted.
  const best = (x: (typeof candidates)[number]) => {
    const r = x.r!;
    return lsn(r.received) > lsn(r.replayed) ? lsn(r.received) : lsn(r.replayed);
  };
  const target = candidates.sort((a, b) => (best(b) > best(a) ? 1 : best(b) < best(a) ? -1 : memberIndex(a.m.spec) - memberIndex(b.m.spec)))[0].m;
  await withPg(target, ctx, async (c) => {
    const deadline = Date.now() + 15_000;
    while (
      !(await one<{ done: boolean }>(c, 'SELECT pg_last_wal_replay_lsn() >= coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) AS done')).done
    ) {
      if (Date.now() > deadline) throw new Error(`${target.spec.name} did not replay what it received in 15 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await c.query('SELECT pg_promote(true, 60)');
    // The new timeline reaches the control file only with a checkpoint: until then pg_rewind, run by the old
    // primary as it rejoins, would see one timeline on both sides.
    await c.query('CHECKPOINT');
  });
  ctx.log.info({ from: old.spec.name, to: target.spec.name }, 'postgres switchover: standby promoted');
  // The old primary and the other standbys find their slots on the new primary as they reconnect.
  await ensureSlots(target, members, ctx);
  return { restart: old.spec.name, state: { primary: target.spec.name } };
}

/**
 * The member's start script (POSIX sh, as the image's postgres user). Its
 * role is read at each start, not written into it: the member is the
 * primary when the primary's name points where its own name does, in the
 * /etc/hosts the agent keeps from the cluster's records (the catalog moves
 * that name in the same transaction that changes the primary). A primary
 * makes its data directory once (initdb, the replication user); a standby
 * clones the primary once (pg_basebackup) and, when it was a primary before,
 * first drops what the new primary lacks (pg_rewind, or a fresh clone if
 * that fails). A marker on the volume says the data is whole, so a clone cut
 * short is made again, never started.
 */
function startScript(me: string, primaryHost: string, journal: boolean): string {
  const waldir = journal ? `--waldir=${JOURNAL}/pg_wal` : '';
  return `#!/bin/sh
# Written by firecampd: starts this member as the primary or as a standby, as the cluster says now.
set -eu
PGDATA=${PGDATA}
READY=${DATA}/.firecampd-data-ready
PRIMARY=${primaryHost}
ME=${me}
say() { echo "firecampd: $*" >&2; }
addr_of() { awk -v n="$1" '$2 == n { a = $1 } END { print a }' /etc/hosts; }
until [ -n "$(addr_of "$PRIMARY")" ] && [ -n "$(addr_of "$ME")" ]; do say "waiting for the names $PRIMARY and $ME"; sleep 1; done
if [ "$(addr_of "$PRIMARY")" = "$(addr_of "$ME")" ]; then ROLE=primary; else ROLE=standby; fi
say "starting as the $ROLE"
# The primary answers, and as the primary: one still replaying a restore's archived WAL (hot standby, so it answers)
# is about to promote to a new timeline, and a clone of it now would be left on the old one, asking for WAL it no
# longer has.
primary_serves() {
  pg_isready -q -h "$PRIMARY" -p ${PG_PORT} &&
    [ "$(psql -h "$PRIMARY" -p ${PG_PORT} -U replicator -d postgres -AtXc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]
}
wait_for_primary() {
  until primary_serves; do
    # The names may have moved meanwhile (this member may be the primary now): decide again.
    if [ "$(addr_of "$PRIMARY")" = "$(addr_of "$ME")" ]; then exec sh "$0"; fi
    say "waiting for the primary ($PRIMARY) to serve"
    sleep 1
  done
}
if [ -f "$READY" ] && [ ! -f "$PGDATA/recovery.signal" ]; then
  # A restore's archive recovery is over (PostgreSQL removes the signal as it promotes): its WAL is not needed.
  rm -rf ${DATA}/${RESTORE_DIR}
fi${
    journal
      ? `
if [ -d "$PGDATA/pg_wal" ] && [ ! -L "$PGDATA/pg_wal" ]; then
  # Restored from a base backup, which holds the WAL in the data directory: onto the journal volume, where it belongs.
  mkdir -p ${JOURNAL}/pg_wal
  mv "$PGDATA"/pg_wal/* ${JOURNAL}/pg_wal/ 2>/dev/null || true
  rm -rf "$PGDATA/pg_wal"
  ln -s ${JOURNAL}/pg_wal "$PGDATA/pg_wal"
fi`
      : ''
  }
if [ ! -f "$READY" ]; then
  rm -rf "$PGDATA"${journal ? ` ${JOURNAL}/pg_wal` : ''}
  if [ "$ROLE" = primary ]; then
    say "initdb"
    initdb -D "$PGDATA" ${waldir} -U postgres --pwfile=${DATA}/.superuser-password -E UTF8 --locale=C --auth-local=peer --auth-host=scram-sha-256
    postgres --single -D "$PGDATA" postgres < ${DATA}/.init.sql > /dev/null
  else
    wait_for_primary
    say "cloning the primary"
    pg_basebackup -h "$PRIMARY" -p ${PG_PORT} -U replicator -D "$PGDATA" ${waldir} -X stream -c fast --no-password
    touch "$PGDATA/standby.signal"
  fi
  touch "$READY"
fi
if [ "$ROLE" = standby ] && [ ! -f "$PGDATA/standby.signal" ]; then
  # It was the primary: its log may hold what the new primary never got.
  wait_for_primary
  if pg_rewind -D "$PGDATA" --source-server="host=$PRIMARY port=${PG_PORT} user=postgres dbname=postgres connect_timeout=5"; then
    touch "$PGDATA/standby.signal"
  else
    say "pg_rewind failed: cloning the primary afresh"
    rm -f "$READY"
    exec sh "$0"
  fi
fi
if [ "$ROLE" = primary ]; then rm -f "$PGDATA/standby.signal"; fi
exec postgres -D "$PGDATA" -c config_file=${DATA}/postgresql.conf
`;
}
