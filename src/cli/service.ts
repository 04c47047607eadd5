// firecampd service create|list|get|scale|upgrade|restart|config|credentials|stop|start|delete|logs|connector
import type { Argv, Options } from 'yargs';
import type { ApiClient } from '../client.ts';
import type { ServiceView, SettingView } from '../catalog/routes.ts';
import { accessLine, type AccessView } from '../firewall/view.ts';
// The types' modules load their clients (pg, ioredis) only when they talk to a service: the registry is light.
import { serviceTypes, typeNames, typesWith } from '../catalog/registry.ts';
import { neededTypes } from '../catalog/spec.ts';
import type { ServiceStatus, ServiceType } from '../catalog/types.ts';
import { UserError } from '../errors.ts';
import { client, print, table, type GlobalArgs } from './output.ts';

/** Bytes for people: 0 B, 512 B, 12 KiB, 3.4 MiB; '-' when unknown. */
export function humanBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${v} B`;
  const shown = Math.abs(v) < 10 ? v.toFixed(1).replace(/\.0$/, '') : String(Math.round(v));
  return `${shown} ${units[u]}`;
}

/** How long a wait goes on while the service is Stalled, before it gives up and says why. */
const STALLED_WAIT_MS = 10_000;

/** The service's conditions, for people: those that hold, or the one that says it is ready. */
function conditionsTable(s: ServiceView): string {
  const shown = (s.conditions ?? []).filter((c) => c.status === 'True' || c.type === 'Ready');
  return table(
    ['CONDITION', 'STATUS', 'REASON', 'SINCE', 'MESSAGE'],
    shown.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime, c.message]),
  );
}

function members(s: ServiceView): string {
  return table(
    ['MEMBER', 'NODE', 'EPOCH', 'IP', 'DNS', 'IMAGE', 'HEALTH', 'ROLE', 'LAG', 'STATE'],
    s.members.map((m) => [
      m.name,
      m.node,
      m.epoch,
      m.ip,
      m.dns,
      m.image,
      m.health,
      m.role,
      humanBytes(m.lag_bytes),
      m.message ? `${m.state}: ${m.message}` : m.state,
    ]),
  );
}

function settingsTable(name: string, settings: SettingView[]): string {
  if (settings.length === 0) return `${name}: its type has no settings that can change`;
  return table(
    ['NAME', 'VALUE', 'DEFAULT', 'DESCRIPTION'],
    settings.map((x) => [x.name, x.value, x.default, x.describe]),
  );
}

/**
 * Wait until the service reaches `until` (or, for GONE, no longer exists),
 * printing each change of progress on stderr (stdout keeps the result, for
 * scripts). Returns the service as it then is; undefined once gone.
 */
export async function waitUntil(api: ApiClient, a: GlobalArgs, s: ServiceView, until: ServiceStatus | 'GONE'): Promise<ServiceView | undefined> {
  const timeout = (a.timeout as number | undefined) ?? 300;
  const deadline = Date.now() + timeout * 1000;
  let last = '';
  /** When this wait first saw the service Stalled for its current reason. */
  let stalledSince: { reason: string; at: number } | undefined;
  while (s.status !== until) {
    if (s.status === 'FAILED' && until !== 'GONE') throw new UserError(`service ${s.spec.name} FAILED: ${s.message}`);
    const stalled = s.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
    if (!stalled || stalled.reason !== stalledSince?.reason) stalledSince = stalled ? { reason: stalled.reason, at: Date.now() } : undefined;
    // A while, not at once: "no node to run it on" may be a node that is joining.
    if (stalled && stalledSince && Date.now() - stalledSince.at >= STALLED_WAIT_MS && until !== 'GONE')
      throw new UserError(
        `service ${s.spec.name} cannot go on (${stalled.reason}): ${stalled.message}. It stays ${s.status}, and firecampd tries again on its own once that changes; see "firecampd service get ${s.spec.name}"`,
      );
    if (Date.now() > deadline)
      throw new UserError(
        `service ${s.spec.name} is still ${s.status} after ${timeout} s: ${s.message}; see "firecampd service get ${s.spec.name}" (the operation goes on)`,
      );
    const running = s.members.filter((m) => m.state === 'running').length;
    const healthy = s.members.filter((m) => m.health === 'healthy').length;
    const line = `${s.status}: ${s.members.length}/${s.spec.replicas} members placed, ${running} running, ${healthy} healthy${s.message ? ` (${s.message})` : ''}`;
    if (line !== last && !a.json) process.stderr.write(line + '\n');
    last = line;
    await new Promise((r) => setTimeout(r, 500));
    try {
      s = await api.request<ServiceView>('GET', `/v1/service?name=${encodeURIComponent(s.spec.name)}`);
    } catch (err) {
      if (until === 'GONE' && err instanceof UserError && err.status === 404) return undefined;
      // The cluster is electing a leader, or this node is briefly out of reach: the operation goes on; look again.
      if (err instanceof UserError && err.status === 503) continue;
      throw err;
    }
  }
  return s;
}

/** "redis 1, postgres 1, kafka 3": a default per type, for a flag's help. */
const perType = (value: (t: ServiceType) => string | number) =>
  serviceTypes()
    .map((t) => `${t.name} ${value(t)}`)
    .join(', ');
/** The subcommands types add of their own (Kafka Connect: connector), for the list of commands. */
const ownCommands = () => serviceTypes().flatMap((t) => t.commands ?? []);

/** The create flags that differ by type, from the registry: the shared ones with each type's defaults, then each type's own. */
function typeFlags(): Record<string, Options> {
  const out: Record<string, Options> = {
    replicas: { type: 'number', describe: 'members in all (a primary and replicas, brokers, nodes…)', defaultDescription: perType((t) => t.defaults.replicas) },
    memory: { type: 'number', describe: 'MiB of memory per member' },
    cpus: { type: 'number', describe: 'CPUs per member' },
    'volume-size': { type: 'number', describe: 'MiB of disk per member', defaultDescription: perType((t) => t.defaults.volumeSizeMiB) },
    'journal-volume-size': {
      type: 'number',
      describe: `MiB of a second volume per member for its log: ${serviceTypes()
        .filter((t) => t.journal)
        .map((t) => `${t.name}, ${t.journal}`)
        .join('; ')}`,
      defaultDescription: 'none: the log stays on the data volume',
    },
    'heap-mib': { type: 'number', describe: `MiB of JVM heap per member (${typesWith((t) => !!t.jvm)})`, defaultDescription: "the type's own" },
  };
  for (const t of serviceTypes())
    for (const [flag, f] of Object.entries(t.options?.flags ?? {})) out[flag] = { ...f, describe: `${t.title} (--type ${t.name}): ${f.describe}` };
  for (const needed of neededTypes())
    out[needed] = { type: 'string', describe: `the ${needed} service this one needs (${typesWith((t) => !!t.needs?.includes(needed))}); it must be ACTIVE` };
  return out;
}

/** Each type's own options block from its flags, under the type's name; the API refuses a block of another type than --type, naming its flags. */
function typeSpecOptions(a: GlobalArgs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const t of serviceTypes()) {
    if (!t.options) continue;
    const block = t.options.fromFlags(Object.fromEntries(Object.keys(t.options.flags).map((f) => [f, a[f]])));
    if (block !== undefined) out[t.name] = block;
  }
  return out;
}

const waitOptions = (c: Argv) =>
  c
    .option('detach', { type: 'boolean', default: false, describe: 'return at once instead of waiting' })
    .option('timeout', { type: 'number', default: 300, describe: 'seconds to wait' });

/** Send a change, then wait for its end unless --detach. */
async function change(a: GlobalArgs, path: string, body: unknown, until: ServiceStatus): Promise<void> {
  const api = await client(a);
  let s = await api.request<ServiceView>('POST', path, body);
  if (!a.detach) s = (await waitUntil(api, a, s, until))!;
  print(a, s, () => `${s.spec.name}: ${s.status}${s.members.length ? `\n${members(s)}` : ''}`);
}

/** --set KEY=VALUE, repeated (not comma-split: a value may hold commas). */
function settings(v: unknown): Record<string, string> | undefined {
  const list = ([] as string[]).concat((v as string[] | string | undefined) ?? []);
  if (list.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const x of list) {
    const i = String(x).indexOf('=');
    if (i <= 0) throw new UserError(`--set: "${x}" is not KEY=VALUE`);
    const k = String(x).slice(0, i);
    const val = String(x).slice(i + 1);
    if (k in out && out[k] !== val) throw new UserError(`--set gives ${k} twice (${out[k]} and ${val}); give it once`);
    out[k] = val;
  }
  return out;
}

const allowOption = {
  type: 'string',
  array: true,
  describe: "networks that reach the members besides the cluster's nodes (CIDR, repeat or comma-separate)",
  defaultDescription: "the networks of the nodes' addresses",
} as const;

/** --log-opt KEY=VALUE…, or undefined when none was given. */
function logOpts(v: unknown): Record<string, string> | undefined {
  const given = (Array.isArray(v) ? v : v === undefined ? [] : [v]).map(String);
  if (given.length === 0) return undefined;
  return Object.fromEntries(
    given.map((kv) => {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new UserError(`--log-opt "${kv}" must be KEY=VALUE, e.g. --log-opt syslog-address=udp://10.0.0.9:514`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );
}

/** --allow's networks as given (the API checks and canonicalizes them), or undefined when not given. */
function allowList(v: unknown): string[] | undefined {
  const list = ([] as string[])
    .concat((v as string[] | string | undefined) ?? [])
    .flatMap((x) => String(x).split(','))
    .map((x) => x.trim())
    .filter(Boolean);
  return list.length ? list : undefined;
}

const setOption = (c: Argv, describe: string) =>
  // Not array: an array option would swallow the positional after it (service config --set a=1 NAME).
  c.option('set', { type: 'string', requiresArg: true, describe: `${describe}; repeat for more` });

/** NAME=VALUE pairs, repeated or comma-separated. */
function labels(v: unknown): Record<string, string> | undefined {
  const list = ([] as string[])
    .concat((v as string[] | string | undefined) ?? [])
    .flatMap((x) => x.split(','))
    .filter(Boolean);
  if (list.length === 0) return undefined;
  return Object.fromEntries(
    list.map((l) => {
      const i = l.indexOf('=');
      if (i <= 0) throw new UserError(`--require-label: "${l}" is not NAME=VALUE`);
      return [l.slice(0, i), l.slice(i + 1)];
    }),
  );
}

/** The backups part of `service get`: target (and its warning), schedule, the next run and the last ones. */
function backupLines(b: NonNullable<ServiceView['backups']>): string[] {
  return [
    `backups: to ${b.target}${b.schedule ? `, on "${b.schedule}" (UTC)` : ', on no schedule'}${b.retention ? `, keeping ${b.retention}` : ''}${b.verify ? ', each drilled' : ''}`,
    ...(b.next_run ? [`  next run: ${b.next_run}`] : []),
    `  last success: ${b.last_success ? `${b.last_success.at} (${b.last_success.id})` : 'none'}`,
    ...(b.last_failure ? [`  last failure: ${b.last_failure.at} (${b.last_failure.id}): ${b.last_failure.message}`] : []),
    ...(b.last_drill
      ? [
          `  last restore drill: ${b.last_drill.at} (${b.last_drill.backup}): ${b.last_drill.status}${
            b.last_drill.status === 'ok' ? `, ${b.last_drill.summary}` : b.last_drill.status === 'failed' ? `: ${b.last_drill.message}` : ''
          }`,
        ]
      : []),
    ...(b.warning ? [`  warning: ${b.warning}`] : []),
  ];
}

export function serviceCommands(y: Argv): Argv {
  const withCommon = y
    .command(
      'create',
      'create a service and wait until it is ACTIVE',
      (c) =>
        setOption(
          waitOptions(
            c
              .option('type', { choices: typeNames(), demandOption: true })
              .option('name', { type: 'string', demandOption: true })
              .options(typeFlags())
              .option('image', { type: 'string', describe: 'container image', defaultDescription: "the type's own" })
              .option('config', { type: 'string', describe: "lines added to the members' config file" })
              .option('allow', allowOption)
              .option('tls', {
                choices: ['on', 'off'],
                describe:
                  'members serve TLS from the cluster CA, for clients and between themselves (where the type can); off: plaintext, as service get then says',
                defaultDescription: 'on',
              })
              .option('tls-cert-hours', {
                type: 'number',
                describe: "how long members' certificates last; a rolling restart renews them in their last third",
                defaultDescription: '8760 (a year)',
              })
              .option('log-driver', {
                type: 'string',
                describe: "Docker's logging driver for the members' output (syslog, gelf, fluentd, …), besides the log kept on each member's volume",
                defaultDescription: "the engine's",
              })
              .option('log-opt', { type: 'string', array: true, describe: "an option of the log driver, KEY=VALUE (repeat), as docker run's --log-opt" })
              .option('require-label', { type: 'string', array: true, describe: 'run only on nodes with this NAME=VALUE label (firecampd --labels)' })
              .option('backup-target', {
                type: 'string',
                describe: 'where its backups go: dir:/path or s3://bucket/prefix',
                defaultDescription: "the cluster's",
              })
              .option('backup-schedule', { type: 'string', describe: 'back it up on this cron schedule, in UTC (e.g. "0 3 * * *": daily at 03:00)' })
              .option('backup-retention', {
                type: 'string',
                describe: 'keep this many backups (7) or those younger than an age (30d, 12h); the newest always',
              })
              .option('backup-verify', {
                type: 'boolean',
                describe: 'restore each scheduled backup into a throwaway service and check it (a restore drill); the result in "service get"',
              }),
          ),
          "a setting KEY=VALUE (see 'firecampd service config NAME' for a type's settings)",
        ),
      async (a: GlobalArgs) => {
        const own = typeSpecOptions(a);
        const required = labels(a.requireLabel);
        const set = settings(a.set);
        const needs = Object.fromEntries(neededTypes().flatMap((t) => (typeof a[t] === 'string' ? [[t, a[t]]] : [])));
        const spec = {
          type: a.type,
          name: a.name,
          ...(a.replicas !== undefined ? { replicas: a.replicas } : {}),
          ...own,
          ...(a.memory ? { memoryMiB: a.memory } : {}),
          ...(a.cpus ? { cpus: a.cpus } : {}),
          ...(a.heapMib !== undefined ? { heapMiB: a.heapMib } : {}),
          ...(a.volumeSize ? { volumeSizeMiB: a.volumeSize } : {}),
          ...(a.journalVolumeSize !== undefined ? { journalVolumeSizeMiB: a.journalVolumeSize } : {}),
          ...(set ? { settings: set } : {}),
          ...(a.image ? { image: a.image } : {}),
          ...(a.config ? { config: a.config } : {}),
          ...(required ? { placement: { labels: required } } : {}),
          ...(Object.keys(needs).length ? { needs } : {}),
          ...(a.backupTarget ? { backupTarget: a.backupTarget } : {}),
          ...(a.backupSchedule ? { backupSchedule: a.backupSchedule } : {}),
          ...(a.backupRetention ? { backupRetention: a.backupRetention } : {}),
          ...(a.backupVerify ? { backupVerify: true } : {}),
          ...(allowList(a.allow) ? { allow: allowList(a.allow) } : {}),
          ...(a.tls ? { tls: a.tls } : {}),
          ...(a.tlsCertHours !== undefined ? { tlsCertHours: a.tlsCertHours } : {}),
          ...(a.logDriver ? { logDriver: a.logDriver } : {}),
          ...(logOpts(a.logOpt) ? { logOpts: logOpts(a.logOpt) } : {}),
        };
        await change(a, '/v1/services', spec, 'ACTIVE');
      },
    )
    .command('list', 'the services and their status', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ services: ServiceView[] }>('GET', '/v1/services');
      print(a, r, () =>
        table(
          ['NAME', 'TYPE', 'STATUS', 'MEMBERS', 'MESSAGE'],
          r.services.map((s) => [s.spec.name, s.spec.type, s.status, `${s.members.filter((m) => m.state === 'running').length}/${s.spec.replicas}`, s.message]),
        ),
      );
    })
    .command(
      'get <name>',
      'a service with its members, nodes, IPs and state',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const s = await (await client(a)).request<ServiceView>('GET', `/v1/service?name=${encodeURIComponent(String(a.name))}`);
        const needs = Object.entries(s.spec.needs ?? {}).map(([kind, name]) => `${kind} ${name}`);
        // needed_by may be missing from a daemon older than this CLI.
        const neededBy = s.needed_by ?? [];
        print(a, s, () =>
          [
            `${s.spec.name} (${s.spec.type}): ${s.status} ${s.message}`,
            ...(needs.length ? [`needs: ${needs.join(', ')}`] : []),
            ...(neededBy.length ? [`needed by: ${neededBy.join(', ')}`] : []),
            ...(s.access ? [accessLine(s.access)] : []),
            ...(s.tls ? [`tls: ${s.tls.detail}`] : []),
            // conditions may be missing from a daemon older than this CLI.
            ...(s.conditions?.length ? [conditionsTable(s)] : []),
            ...(s.members.length ? [members(s)] : []),
            ...(s.backups ? backupLines(s.backups) : []),
          ].join('\n'),
        );
      },
    )
    .command(
      'scale <name> <replicas>',
      'change the number of members and wait until the service is ACTIVE again',
      (c) =>
        waitOptions(
          c.positional('name', { type: 'string', demandOption: true }).positional('replicas', { type: 'number', demandOption: true }).option('rebalance', {
            type: 'boolean',
            default: false,
            describe: 'after a scale out, move data onto the new members (Kafka: partitions) and wait until that is done too',
          }),
        ),
      (a: GlobalArgs) => change(a, '/v1/services/scale', { name: a.name, replicas: a.replicas, ...(a.rebalance ? { rebalance: true } : {}) }, 'ACTIVE'),
    )
    .command(
      'upgrade <name>',
      'move every member to a new image, one at a time (replicas first), and wait until done',
      (c) =>
        waitOptions(
          c
            .positional('name', { type: 'string', demandOption: true })
            .option('image', { type: 'string', demandOption: true, describe: 'the new container image' }),
        ),
      (a: GlobalArgs) => change(a, '/v1/services/upgrade', { name: a.name, image: a.image }, 'ACTIVE'),
    )
    .command(
      'restart <name>',
      "restart every member, one at a time in the type's order (replicas before the primary), and wait until done",
      (c) => waitOptions(c.positional('name', { type: 'string', demandOption: true })),
      (a: GlobalArgs) => change(a, '/v1/services/restart', { name: a.name }, 'ACTIVE'),
    )
    .command(
      'config <name>',
      "the service's settings; with --set, change them (a rolling restart) and wait until done; with --allow, its access list (in place)",
      (c) =>
        setOption(
          waitOptions(
            c.positional('name', { type: 'string', demandOption: true }).option('allow', {
              ...allowOption,
              // Not array: it would swallow the positional after it (service config --allow 10.0.0.0/8 NAME).
              array: false,
              describe: `${allowOption.describe}; "default": the networks of the nodes' addresses again. Changed in place, no restart`,
            }),
          ),
          'change this setting to VALUE (the API says which settings exist and what they take)',
        ),
      async (a: GlobalArgs) => {
        const set = settings(a.set);
        const api = await client(a);
        const name = String(a.name);
        const allow = allowList(a.allow);
        if (allow) {
          const r = await api.request<{ name: string; access: AccessView; changed: boolean }>('POST', '/v1/services/allow', {
            name,
            allow: allow.length === 1 && allow[0] === 'default' ? 'default' : allow,
          });
          if (!set) return print(a, r, () => `${r.name}: ${r.changed ? '' : 'unchanged; '}${accessLine(r.access)}`);
        }
        if (!set) {
          const r = await api.request<{ name: string; settings: SettingView[] }>('GET', `/v1/service/config?name=${encodeURIComponent(name)}`);
          return print(a, r, () => settingsTable(r.name, r.settings));
        }
        const r = await api.request<ServiceView & { settings: SettingView[] }>('POST', '/v1/services/config', { name, set });
        const s = a.detach ? r : (await waitUntil(api, a, r, 'ACTIVE'))!;
        print(a, { ...s, settings: r.settings }, () => `${s.spec.name}: ${s.status}\n${settingsTable(s.spec.name, r.settings)}`);
      },
    )
    .command(
      'credentials <name>',
      "the service's generated passwords and the users they belong to",
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (
          await client(a)
        ).request<{ name: string; credentials: { secret: string; user?: string; describe: string; value: string }[] }>(
          'GET',
          `/v1/service/credentials?name=${encodeURIComponent(String(a.name))}`,
        );
        print(a, r, () =>
          r.credentials.length
            ? table(
                ['SECRET', 'USER', 'VALUE', 'DESCRIPTION'],
                r.credentials.map((x) => [x.secret, x.user, x.value, x.describe]),
              )
            : `${r.name}: no generated credentials`,
        );
      },
    )
    .command(
      'ca <name>',
      "what a client of the service trusts: the cluster CA's certificate (PEM) that signs its members' certificates",
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (
          await client(a)
        ).request<{ name: string; tls: ServiceView['tls']; ca: string }>('GET', `/v1/service/ca?name=${encodeURIComponent(String(a.name))}`);
        // The PEM alone on stdout, to redirect into a file; a service that serves no TLS is said on stderr.
        if (!r.tls.enabled && !a.json) process.stderr.write(`firecampd: ${r.name} serves no TLS: ${r.tls.detail}\n`);
        print(a, r, () => r.ca.trimEnd());
      },
    )
    .command(
      'stop <name>',
      'stop every member (volumes, addresses and names are kept) and wait until stopped',
      (c) => waitOptions(c.positional('name', { type: 'string', demandOption: true })),
      (a: GlobalArgs) => change(a, '/v1/services/stop', { name: a.name }, 'STOPPED'),
    )
    .command(
      'start <name>',
      'start a stopped service again and wait until it is ACTIVE',
      (c) => waitOptions(c.positional('name', { type: 'string', demandOption: true })),
      (a: GlobalArgs) => change(a, '/v1/services/start', { name: a.name }, 'ACTIVE'),
    )
    .command(
      'delete <name>',
      'stop and remove a service and wait until it is gone (volumes are kept)',
      (c) => waitOptions(c.positional('name', { type: 'string', demandOption: true })),
      async (a: GlobalArgs) => {
        const api = await client(a);
        const s = await api.request<ServiceView>('POST', '/v1/services/delete', { name: a.name });
        if (a.detach) return print(a, s, () => `${s.spec.name}: ${s.status}`);
        await waitUntil(api, a, s, 'GONE');
        print(a, { name: s.spec.name, status: 'DELETED' }, () => `${s.spec.name}: DELETED`);
      },
    )
    .command(
      'logs <name>',
      "a member's output as its volume keeps it, across its moves and restarts (each marked), from whichever node runs it",
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('member', { type: 'string', describe: 'which member', defaultDescription: '<name>-0' })
          .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'then new lines as they come' })
          .option('since', { type: 'string', describe: 'from a duration ago (90s, 10m, 1h30m, 2d) or a time (RFC 3339)' })
          .option('previous', { type: 'boolean', default: false, describe: 'only its run before the last start or restart' })
          .option('tail', { type: 'number', describe: 'only the last N lines', defaultDescription: 'all' })
          .option('timestamps', { alias: 't', type: 'boolean', default: false, describe: "each line's time in front of it" }),
      async (a: GlobalArgs) => {
        const q = new URLSearchParams({
          name: String(a.name),
          follow: String(a.follow),
          previous: String(a.previous),
          timestamps: String(a.timestamps),
          ...(typeof a.tail === 'number' ? { tail: String(a.tail) } : {}),
          ...(a.since ? { since: a.since as string } : {}),
          ...(a.member ? { member: a.member as string } : {}),
        });
        // A reader that stops early (| head) ends the command quietly, as `docker logs | head` does.
        process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(0) : undefined));
        for await (const line of (await client(a)).stream(`/v1/service/logs?${q}`)) process.stdout.write(line + '\n');
      },
    )
    .demandCommand(
      1,
      `name a service command: ${['create', 'list', 'get', 'scale', 'upgrade', 'restart', 'config', 'credentials', 'ca', 'stop', 'start', 'delete', 'logs', ...ownCommands().map((c) => c.command)].join(', ')}`,
    );
  return ownCommands().reduce((acc, c) => acc.command(c.command, c.describe, c.builder), withCommon);
}
