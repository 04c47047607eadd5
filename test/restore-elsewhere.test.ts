// Restore on a cluster that never saw the backups: a first test bed makes a
// PostgreSQL service and a Redis cluster, writes to both, backs both up to a
// bucket of an S3-compatible server (S3Proxy) and exports its backup key;
// then it is destroyed, controldb and all. A second bed, made after, with a
// fresh controldb, takes the key and the bucket's credentials, lists the
// backups from the bucket alone and restores both under their own names:
// every write acknowledged before the backups is there, and the Redis
// cluster has its slots laid out as before.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { TestBed } from './bed/bed.ts';
import { REPO } from './helpers/proc.ts';
import { runClient, serviceCaFile, serviceContext, serviceCredentials, startServiceBed, type Cli } from './helpers/service-bed.ts';
import { startS3Server, type S3Server } from './helpers/s3-server.ts';

const PG_ROWS = 3000;
const KEYS = 3000;
const PG_CLIENT = path.join(REPO, 'test', 'helpers', 'pg-client.ts');
const REDIS_CLIENT = path.join(REPO, 'test', 'helpers', 'redis-cluster-client.ts');
const TARGET = 's3://backups/clusters';

interface Backup {
  id: string;
  service: string;
  type: string;
  status: string;
  parts: { member: string; name: string }[];
}

describe('a restore on a cluster that never saw the backups', { timeout: 1_200_000 }, () => {
  let bed: TestBed | undefined;
  let cli: Cli;
  let s3: (S3Server & { dir: string }) | undefined;
  after(async () => {
    s3?.stop();
    await bed?.destroy();
  });

  const dnsOf = (b: TestBed) => b.nodes.map((n) => `${n.ip}:53`).join(',');
  /** The PostgreSQL client, over TLS verified against the CA of the cluster `b` (a restore elsewhere gets that cluster's certificates). */
  const pg = async (b: TestBed, password: string, args: string[]) => {
    const ca = await serviceCaFile(cli, 'pg', b.nodes[0].addr);
    return runClient<{ rows: number; max: number; acked: number[] }>(
      b,
      [process.execPath, '--import', 'tsx', PG_CLIENT, '--dns', dnsOf(b), '--host', 'primary.pg.fc.test', '--password', password, '--ca', ca, ...args],
      300_000,
    );
  };
  const redis = async (b: TestBed, password: string, args: string[]) =>
    runClient<Record<string, unknown>>(
      b,
      [
        process.execPath,
        '--import',
        'tsx',
        REDIS_CLIENT,
        '--dns',
        `${b.nodes[0].ip}:53`,
        '--seed',
        'cache-0.cache.fc.test,cache-1.cache.fc.test,cache-2.cache.fc.test',
        `--password=${password}`,
        `--ca=${await serviceCaFile(cli, 'cache', b.nodes[0].addr)}`,
        ...args,
      ],
      300_000,
    );
  const ok = async (args: string[], via: TestBed) => {
    const r = await cli([...args, '--addr', via.nodes[0].addr]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}\n${serviceContext(via, 'pg', [0, 1, 2])}\n${serviceContext(via, 'cache', [0, 1, 2])}`);
    return r.stdout;
  };
  const setTarget = (b: TestBed) =>
    ok(['backup', 'target', 'set', TARGET, '--endpoint', s3!.endpoint, '--access-key-id', s3!.accessKeyId, '--secret-access-key', s3!.secretAccessKey], b);
  /** The slot ranges of each master, as CLUSTER SHARDS would order them: "0-5460 5461-10922 10923-16383". */
  const slotLayout = async (b: TestBed, password: string) => ((await redis(b, password, ['slots'])) as { slots: string[] }).slots.join(' ');

  let key = '';
  let pgPassword = '';
  let redisPassword = '';
  let layout = '';

  it('backs up a PostgreSQL service and a Redis cluster to a bucket, exports the key, and is gone', async () => {
    ({ bed, cli } = await startServiceBed({ leaseTtl: 8 }));
    const b = bed;
    s3 = await startS3Server(b.gateway);
    await setTarget(b);
    await ok(['service', 'create', '--type', 'postgres', '--name', 'pg', '--volume-size', '256'], b);
    await ok(['service', 'create', '--type', 'redis', '--name', 'cache', '--shards', '3', '--replicas-per-shard', '0', '--volume-size', '64'], b);
    pgPassword = (await serviceCredentials(cli, 'pg', b.nodes[0].addr)).credentials.find((c) => c.user === 'postgres')!.value;
    redisPassword = (await serviceCredentials(cli, 'cache', b.nodes[0].addr)).credentials[0].value;
    const inserted = await pg(b, pgPassword, ['insert', String(PG_ROWS)]);
    assert.deepEqual(inserted.acked, [1, PG_ROWS]);
    assert.deepEqual(await redis(b, redisPassword, ['write', String(KEYS)]), { written: KEYS });
    layout = await slotLayout(b, redisPassword);
    for (const service of ['pg', 'cache']) {
      const made = JSON.parse(await ok(['backup', 'create', service, '--wait', '--json'], b)) as Backup;
      assert.equal(made.status, 'complete');
      if (service === 'cache')
        assert.deepEqual(
          made.parts.map((p) => p.name),
          ['shard-0', 'shard-1', 'shard-2'],
          'one RDB per shard',
        );
    }
    key = (JSON.parse(await ok(['backup', 'key', 'export', '--json'], b)) as { key: string }).key;
    await b.destroy();
    bed = undefined;
    s3.stop();
  });

  it('on a new cluster with the key and the bucket: lists the backups from the bucket and restores both, every acknowledged write there', async () => {
    assert.ok(key && s3, 'the first test made the backups');
    ({ bed, cli } = await startServiceBed({ leaseTtl: 8 }));
    const b = bed;
    s3 = await startS3Server(b.gateway, { dir: s3.dir });
    // Without the key the backups do not open: the error says what to import.
    await setTarget(b);
    const listed = (JSON.parse(await ok(['backup', 'list', '--target', TARGET, '--json'], b)) as { backups: Backup[] }).backups;
    assert.deepEqual(listed.map((x) => `${x.service} ${x.type} ${x.status}`).sort(), ['cache redis complete', 'pg postgres complete']);
    const pgBackup = listed.find((x) => x.service === 'pg')!;
    const cacheBackup = listed.find((x) => x.service === 'cache')!;
    const refused = await cli(['backup', 'restore', pgBackup.id, '--as', 'pg', '--target', TARGET, '--addr', b.nodes[0].addr]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /this cluster lacks backup key [0-9a-f]{16}: import the key of the cluster that made the backup/);
    await ok(['backup', 'key', 'import', key], b);
    await ok(['backup', 'restore', pgBackup.id, '--as', 'pg', '--target', TARGET, '--timeout', '300'], b);
    await ok(['backup', 'restore', cacheBackup.id, '--as', 'cache', '--target', TARGET, '--timeout', '300'], b);
    const count = await pg(b, pgPassword, ['count']);
    assert.deepEqual(count, { rows: PG_ROWS, max: PG_ROWS }, 'every acknowledged row');
    assert.deepEqual(await redis(b, redisPassword, ['read', String(KEYS)]), { good: KEYS, wrong: [] }, 'every key');
    assert.equal(await slotLayout(b, redisPassword), layout, 'the same slot layout');
  });
});
