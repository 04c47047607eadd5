// firecampd backup create|list|get|delete|restore, backup key export|import, backup target get|set
import type { Argv } from 'yargs';
import type { BackupView } from '../backup/routes.ts';
import type { DrillRecord as DrillView } from '../backup/records.ts';
import type { ServiceView } from '../catalog/routes.ts';
import { UserError } from '../errors.ts';
import { humanBytes, waitUntil } from './service.ts';
import { client, print, table, type GlobalArgs } from './output.ts';

const rows = (bs: BackupView[]) =>
  table(
    ['ID', 'SERVICE', 'TYPE', 'STATUS', 'SIZE', 'CREATED', 'TARGET', 'MESSAGE'],
    bs.map((b) => [b.id, b.service, b.type, b.status, humanBytes(b.bytes), b.created_at, b.target, b.message]),
  );

/** Said with every backup that sits on one node's own disk. */
const localWarning = (b: { local_target: boolean; target: string }) =>
  b.local_target
    ? `warning: ${b.target} is this node's own disk: its backups die with the node; set a target every node mounts ("firecampd backup target set dir:/shared/backups")`
    : undefined;

export function backupCommands(y: Argv): Argv {
  return y
    .command(
      'create <service>',
      'back up a service (every part sealed: compressed and encrypted with the cluster key) and, with --wait, wait until it is complete',
      (c) =>
        c
          .positional('service', { type: 'string', demandOption: true })
          .option('target', {
            type: 'string',
            describe: 'where to keep it: dir:/path or s3://bucket/prefix',
            defaultDescription: "the service's, else the cluster's",
          })
          .option('wait', { type: 'boolean', default: false, describe: 'wait until the backup is complete (exit 1 if it fails)' })
          .option('timeout', { type: 'number', default: 3600, describe: 'seconds to wait' }),
      async (a: GlobalArgs) => {
        const api = await client(a);
        let b = await api.request<BackupView>('POST', '/v1/backups', { service: a.service, ...(a.target ? { target: a.target } : {}) });
        const warn = localWarning(b);
        if (warn && !a.json) process.stderr.write(warn + '\n');
        const deadline = Date.now() + Number(a.timeout) * 1000;
        let last = '';
        while (a.wait && (b.status === 'pending' || b.status === 'running')) {
          if (Date.now() > deadline)
            throw new UserError(`backup ${b.id} is still ${b.status} after ${String(a.timeout)} s: ${b.message}; see "firecampd backup get ${b.id}"`);
          const line = `${b.status}: ${b.message}`;
          if (line !== last && !a.json) process.stderr.write(line + '\n');
          last = line;
          await new Promise((r) => setTimeout(r, 500));
          try {
            b = await api.request<BackupView>('GET', `/v1/backup?id=${encodeURIComponent(b.id)}`);
          } catch (err) {
            if (err instanceof UserError && err.status === 503) continue; // an election: look again
            throw err;
          }
        }
        if (a.wait && b.status === 'failed') throw new UserError(`backup ${b.id} failed: ${b.message}`);
        print(a, b, () => `${b.id}: ${b.status} ${b.message}`);
      },
    )
    .command(
      'list [service]',
      'the backups of this cluster, or (--target) those a target holds, made by any cluster',
      (c) =>
        c.positional('service', { type: 'string' }).option('target', { type: 'string', describe: 'read the target itself: dir:/path or s3://bucket/prefix' }),
      async (a: GlobalArgs) => {
        const q = new URLSearchParams({
          ...(typeof a.service === 'string' ? { service: a.service } : {}),
          ...(typeof a.target === 'string' ? { target: a.target } : {}),
        });
        const r = await (await client(a)).request<{ backups: BackupView[] }>('GET', `/v1/backups?${q}`);
        print(a, r, () => rows(r.backups));
      },
    )
    .command(
      'get <id>',
      'a backup: its status, parts and target',
      (c) => c.positional('id', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const b = await (await client(a)).request<BackupView>('GET', `/v1/backup?id=${encodeURIComponent(String(a.id))}`);
        print(a, b, () =>
          [
            rows([b]),
            ...(b.parts.length
              ? [
                  table(
                    ['MEMBER', 'PART', 'SIZE', 'DUMP', 'SHA256'],
                    b.parts.map((p) => [p.member, p.name, humanBytes(p.bytes), humanBytes(p.rawBytes), p.sha256]),
                  ),
                ]
              : []),
            ...(localWarning(b) ? [localWarning(b)!] : []),
          ].join('\n'),
        );
      },
    )
    .command(
      'delete <id>',
      'remove a backup from its target and from the cluster',
      (c) => c.positional('id', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (await client(a)).request<{ id: string; status: string }>('POST', '/v1/backups/delete', { id: a.id });
        print(a, r, () => `${r.id}: ${r.status}`);
      },
    )
    .command(
      'restore <id>',
      'make a new service of the same type from a backup (checked whole first) and wait until it is ACTIVE',
      (c) =>
        c
          .positional('id', { type: 'string', demandOption: true })
          .option('as', { type: 'string', demandOption: true, describe: 'the new service' })
          .option('target', { type: 'string', describe: 'where the backup is, for one this cluster did not make: dir:/path or s3://bucket/prefix' })
          .option('to-time', {
            type: 'string',
            describe: 'replay the archived log up to this moment (RFC 3339, e.g. 2026-12-07T14:30:00Z), for a type that archives it (PostgreSQL)',
            defaultDescription: 'to the end of what is archived',
          })
          .option('timeout', { type: 'number', default: 600, describe: 'seconds to wait' }),
      async (a: GlobalArgs) => {
        const api = await client(a);
        const made = await api.request<ServiceView>('POST', '/v1/backups/restore', {
          id: a.id,
          as: a.as,
          ...(a.target ? { target: a.target } : {}),
          ...(a['to-time'] ? { toTime: a['to-time'] } : {}),
        });
        const s = (await waitUntil(api, a, made, 'ACTIVE'))!;
        print(a, s, () => `${s.spec.name}: ${s.status} (restored from ${String(a.id)})`);
      },
    )
    .command(
      'verify <id>',
      "a restore drill: restore the backup into a throwaway service, run its type's check (PostgreSQL: tables and size; Redis: keys; ZooKeeper: znodes; Cassandra: nodetool verify, tables; Kafka: topics; Kafka Connect: connectors), and remove it",
      (c) =>
        c
          .positional('id', { type: 'string', demandOption: true })
          .option('target', { type: 'string', describe: 'where the backup is, for one this cluster did not make' })
          .option('timeout', { type: 'number', default: 3600, describe: 'seconds the restore may take before the drill fails' }),
      async (a: GlobalArgs) => {
        const api = await client(a);
        const started = Date.now();
        let d = await api.request<DrillView>('POST', '/v1/backup/verify', {
          id: a.id,
          ...(a.target ? { target: a.target } : {}),
          timeoutSeconds: Number(a.timeout),
        });
        if (!a.json && d.status === 'running') process.stderr.write(`restoring ${String(a.id)} as ${d.id}\n`);
        let said = d.message;
        // Until it ended and its throwaway service is gone: a drill leaves nothing behind.
        // Bounded: the leader gives the drill up at its deadline, and removing a service takes seconds.
        const deadline = Date.now() + (Number(a.timeout) + 300) * 1000;
        while (d.status === 'running' || !d.removed_at) {
          if (Date.now() > deadline) throw new UserError(`restore drill ${d.id} is still ${d.status} (${d.message}); see "firecampd service get ${d.id}"`);
          await new Promise((r) => setTimeout(r, 1000));
          d = await api.request<DrillView>('GET', `/v1/backup/drill?id=${encodeURIComponent(d.id)}`);
          if (!a.json && d.message !== said) process.stderr.write(`${d.message}\n`);
          said = d.message;
        }
        const result = {
          backup: d.backup,
          service: d.id,
          status: d.status,
          summary: d.summary,
          message: d.message,
          seconds: Math.round((Date.now() - started) / 1000),
        };
        print(a, result, () =>
          result.status === 'ok'
            ? `backup ${result.backup} restores: ${result.summary} (${result.seconds} s, ${d.id} removed)`
            : `backup ${result.backup} does not restore: ${result.message}`,
        );
        if (result.status !== 'ok') process.exitCode = 1;
      },
    )
    .command(
      'schedule <service>',
      "set or change a service's backup schedule and retention (kept by the leader: a backup on each moment, the oldest beyond retention removed)",
      (c) =>
        c
          .positional('service', { type: 'string', demandOption: true })
          .option('backup-schedule', { type: 'string', describe: 'a cron expression, in UTC ("0 3 * * *": daily at 03:00); "none": no schedule' })
          .option('backup-retention', { type: 'string', describe: 'keep this many (7) or those younger than an age (30d, 12h); "none": keep all' })
          .option('backup-verify', {
            type: 'boolean',
            describe: 'drill each scheduled backup: restore it into a throwaway service and check it (--no-backup-verify: stop)',
          }),
      async (a: GlobalArgs) => {
        const given = (v: string | undefined) => (v === undefined ? {} : { value: v === 'none' ? null : v });
        const schedule = given(a['backup-schedule'] as string | undefined);
        const retention = given(a['backup-retention'] as string | undefined);
        const verify = a['backup-verify'] as boolean | undefined;
        if (!('value' in schedule) && !('value' in retention) && verify === undefined)
          throw new UserError('give --backup-schedule, --backup-retention, --backup-verify or some of them');
        const r = await (
          await client(a)
        ).request<NonNullable<ServiceView['backups']>>('POST', '/v1/backup/schedule', {
          service: a.service,
          ...('value' in schedule ? { schedule: schedule.value } : {}),
          ...('value' in retention ? { retention: retention.value } : {}),
          ...(verify !== undefined ? { verify } : {}),
        });
        print(a, r, () =>
          [
            `schedule: ${r.schedule ?? 'none'}`,
            `retention: ${r.retention ?? 'all'}`,
            `restore drill after each: ${r.verify ? 'yes' : 'no'}`,
            ...(r.next_run ? [`next run: ${r.next_run}`] : []),
          ].join('\n'),
        );
      },
    )
    .command('key', "the cluster's backup key", (k) =>
      k
        .command('export', 'print the key new backups are sealed with: keep it safe, a new cluster needs it to restore them', {}, async (a: GlobalArgs) => {
          const r = await (await client(a)).request<{ id: string; key: string }>('GET', '/v1/backup/key');
          print(a, r, () => r.key);
        })
        .command(
          'import <key>',
          "add another cluster's key, so that its backups restore here",
          (c) => c.positional('key', { type: 'string', demandOption: true }),
          async (a: GlobalArgs) => {
            const r = await (await client(a)).request<{ id: string; current: boolean }>('POST', '/v1/backup/key', { key: a.key });
            print(a, r, () => `key ${r.id} imported${r.current ? ' (new backups are sealed with it)' : ''}`);
          },
        )
        .demandCommand(1, 'name a key command: export or import'),
    )
    .command('target', "the cluster's default backup target", (t) =>
      t
        .command('get', 'where backups go when a service names no target', {}, async (a: GlobalArgs) => {
          const r = await (await client(a)).request<{ target: string; local_target: boolean }>('GET', '/v1/backup/target');
          print(a, r, () => [r.target, ...(localWarning(r) ? [localWarning(r)!] : [])].join('\n'));
        })
        .command(
          'set <target>',
          'set it: dir:/path (storage every node mounts, on a cluster of several nodes) or s3://bucket/prefix (with its endpoint, region and credentials, kept as a secret for the bucket and tried at once)',
          (c) =>
            c
              .positional('target', { type: 'string', demandOption: true })
              .option('endpoint', { type: 'string', describe: "an S3-compatible store's URL", defaultDescription: 'AWS S3' })
              .option('region', { type: 'string', default: 'us-east-1' })
              .option('access-key-id', { type: 'string', defaultDescription: '$AWS_ACCESS_KEY_ID' })
              .option('secret-access-key', { type: 'string', defaultDescription: '$AWS_SECRET_ACCESS_KEY' })
              .option('default', {
                type: 'boolean',
                default: true,
                describe:
                  "make it the cluster's default target (--no-default: only keep the bucket's credentials, for a service's --backup-target or a restore)",
              }),
          async (a: GlobalArgs) => {
            const target = String(a.target);
            const id = (a['access-key-id'] as string | undefined) ?? process.env.AWS_ACCESS_KEY_ID;
            const secret = (a['secret-access-key'] as string | undefined) ?? process.env.AWS_SECRET_ACCESS_KEY;
            const s3 =
              target.startsWith('s3:') && id && secret
                ? { ...(a.endpoint ? { endpoint: a.endpoint as string } : {}), region: String(a.region), accessKeyId: id, secretAccessKey: secret }
                : undefined;
            if (target.startsWith('s3:') && (id === undefined) !== (secret === undefined))
              throw new UserError('give both --access-key-id and --secret-access-key (or neither, to use the credentials the cluster keeps for the bucket)');
            const r = await (
              await client(a)
            ).request<{ target: string; default: boolean; local_target: boolean }>('POST', '/v1/backup/target', {
              target,
              default: a.default !== false,
              ...(s3 ? { s3 } : {}),
            });
            print(a, r, () => (r.default ? r.target : `credentials kept for ${r.target}`));
          },
        )
        .demandCommand(1, 'name a target command: get or set'),
    )
    .demandCommand(1, 'name a backup command: create, list, get, delete, restore, verify, schedule, key or target');
}
