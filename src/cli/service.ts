// firecampd service create|list|get|scale|upgrade|restart|config|credentials|stop|start|delete|logs|connector
import type { Argv } from 'yargs';
import type { ApiClient } from '../client.ts';
import type { ServiceView, SettingView } from '../catalog/routes.ts';
// Only the type names: the registry would load every type's client (pg, ioredis) into each CLI start.
import { SERVICE_TYPE_NAMES, type ServiceStatus } from '../catalog/types.ts';
import { UserError } from '../errors.ts';
import { connectorCommands } from './connector.ts';
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
async function waitUntil(api: ApiClient, a: GlobalArgs, s: ServiceView, until: ServiceStatus | 'GONE'): Promise<ServiceView | undefined> {
  const timeout = (a.timeout as number | undefined) ?? 300;
  const deadline = Date.now() + timeout * 1000;
  let last = '';
  while (s.status !== until) {
    if (s.status === 'FAILED' && until !== 'GONE') throw new UserError(`service ${s.spec.name} FAILED: ${s.message}`);
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

export function serviceCommands(y: Argv): Argv {
  return y
    .command(
      'create',
      'create a service and wait until it is ACTIVE',
      (c) =>
        setOption(
          waitOptions(
            c
              .option('type', { choices: SERVICE_TYPE_NAMES, demandOption: true })
              .option('name', { type: 'string', demandOption: true })
              .option('replicas', { type: 'number', describe: 'members: a primary and replicas (not with --shards)', defaultDescription: '1' })
              .option('shards', { type: 'number', describe: 'Redis cluster mode: this many masters (at least 3)' })
              .option('replicas-per-shard', { type: 'number', default: 1, describe: 'Redis cluster mode: replicas of each master' })
              .option('memory', { type: 'number', describe: 'MiB of memory per member' })
              .option('cpus', { type: 'number', describe: 'CPUs per member' })
              .option('volume-size', { type: 'number', describe: 'MiB of disk per member', defaultDescription: '256' })
              .option('journal-volume-size', {
                type: 'number',
                describe: 'MiB of a second volume per member for the write-ahead log (PostgreSQL), where the type has one',
                defaultDescription: 'none: the log stays on the data volume',
              })
              .option('sync-standbys', {
                type: 'number',
                describe: 'PostgreSQL: a commit is acknowledged once this many standbys have it',
                defaultDescription: '0: commits do not wait for standbys',
              })
              .option('dedicated-masters', {
                type: 'number',
                describe: 'Elasticsearch: the first N members (0 or 3) are cluster managers only, the others data and ingest',
                defaultDescription: '0: the first 3 members are cluster-manager-eligible and hold data too',
              })
              .option('heap-mib', {
                type: 'number',
                describe: 'MiB of JVM heap per member (ZooKeeper, Kafka, Kafka Connect, Cassandra, Elasticsearch)',
                defaultDescription: "the type's own",
              })
              .option('kafka', { type: 'string', describe: 'the Kafka service this one needs (kafka-connect); it must be ACTIVE' })
              .option('zookeeper', { type: 'string', describe: 'the ZooKeeper service this one needs, for the types that use one' })
              .option('image', { type: 'string', describe: 'container image', defaultDescription: "the type's own" })
              .option('config', { type: 'string', describe: "lines added to the members' config file" })
              .option('require-label', { type: 'string', array: true, describe: 'run only on nodes with this NAME=VALUE label (firecampd --labels)' }),
          ),
          "a setting KEY=VALUE (see 'firecampd service config NAME' for a type's settings)",
        ),
      async (a: GlobalArgs) => {
        if (a.shards !== undefined && a.replicas !== undefined)
          throw new UserError('give --shards (Redis cluster mode) or --replicas (a primary and replicas), not both');
        if (a.syncStandbys !== undefined && a.type !== 'postgres')
          throw new UserError(`--sync-standbys is for PostgreSQL services only (--type postgres); a ${String(a.type)} service has no synchronous standbys`);
        if (a.dedicatedMasters !== undefined && a.type !== 'elasticsearch')
          throw new UserError(
            `--dedicated-masters is for Elasticsearch services only (--type elasticsearch); a ${String(a.type)} service has no cluster managers`,
          );
        const required = labels(a.requireLabel);
        const set = settings(a.set);
        const needs = { ...(a.kafka ? { kafka: a.kafka as string } : {}), ...(a.zookeeper ? { zookeeper: a.zookeeper as string } : {}) };
        const spec = {
          type: a.type,
          name: a.name,
          ...(a.shards !== undefined ? { redis: { shards: a.shards, replicasPerShard: a.replicasPerShard } } : { replicas: a.replicas ?? 1 }),
          ...(a.memory ? { memoryMiB: a.memory } : {}),
          ...(a.cpus ? { cpus: a.cpus } : {}),
          ...(a.heapMib !== undefined ? { heapMiB: a.heapMib } : {}),
          ...(a.volumeSize ? { volumeSizeMiB: a.volumeSize } : {}),
          ...(a.journalVolumeSize !== undefined ? { journalVolumeSizeMiB: a.journalVolumeSize } : {}),
          ...(a.syncStandbys !== undefined ? { postgres: { syncStandbys: a.syncStandbys } } : {}),
          ...(a.dedicatedMasters !== undefined ? { elasticsearch: { dedicatedMasters: a.dedicatedMasters } } : {}),
          ...(set ? { settings: set } : {}),
          ...(a.image ? { image: a.image } : {}),
          ...(a.config ? { config: a.config } : {}),
          ...(required ? { placement: { labels: required } } : {}),
          ...(Object.keys(needs).length ? { needs } : {}),
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
            ...(s.members.length ? [members(s)] : []),
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
      "the service's settings; with --set, change them (a rolling restart) and wait until done",
      (c) =>
        setOption(
          waitOptions(c.positional('name', { type: 'string', demandOption: true })),
          'change this setting to VALUE (the API says which settings exist and what they take)',
        ),
      async (a: GlobalArgs) => {
        const set = settings(a.set);
        const api = await client(a);
        const name = String(a.name);
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
      "a member's container logs, from whichever node runs it",
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('member', { type: 'string', describe: 'which member', defaultDescription: '<name>-0' })
          .option('follow', { alias: 'f', type: 'boolean', default: false })
          .option('tail', { type: 'number', default: 100, describe: 'lines from the end' }),
      async (a: GlobalArgs) => {
        const q = new URLSearchParams({
          name: String(a.name),
          follow: String(a.follow),
          tail: String(a.tail),
          ...(a.member ? { member: a.member as string } : {}),
        });
        for await (const line of (await client(a)).stream(`/v1/service/logs?${q}`)) process.stdout.write(line + '\n');
      },
    )
    .command('connector', 'the connectors of a Kafka Connect service: put, get, delete', connectorCommands)
    .demandCommand(1, 'name a service command: create, list, get, scale, upgrade, restart, config, credentials, stop, start, delete, logs or connector');
}
