// npm run bench:backup -- [--size-mib 1024] [--runs 3] [--json]
// On the test bed (one node with its dockerd): a PostgreSQL service holding a
// database of at least --size-mib (a table of generated rows), backed up to a
// directory target on the bed's storage and restored as a new service, each
// --runs times. Backup MiB/s: the database's size over create→complete;
// restore MiB/s: the same size over restore→ACTIVE (fetching, unpacking,
// PostgreSQL's recovery and start). Beside them, the disk's own sequential
// write speed in the same directory, the same run (dd of --size-mib, 1 MiB
// blocks, fdatasync), and the ratios. Medians of the runs.
//
// --json prints one line: {"size_mib", "backup_mib_s", "restore_mib_s", "disk_write_mib_s", "runs"}.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { median, oneNodeBed, until } from './wait.ts';
import { docker } from '../test/bed/docker.ts';

const args = yargs(hideBin(process.argv))
  .option('size-mib', { type: 'number', default: 1024, describe: 'the database size to reach, at least' })
  .option('runs', { type: 'number', default: 3 })
  .option('json', { type: 'boolean', default: false })
  .strict()
  .parseSync();

const log = (s: string) => process.stderr.write(`bench:backup: ${s}\n`);

/** dd of `mib` MiB in 1 MiB blocks into `dir`, synced before it ends: MiB/s. */
function diskWrite(dir: string, mib: number): number {
  const file = path.join(dir, 'bench-dd');
  const started = process.hrtime.bigint();
  execFileSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fdatasync'], { stdio: 'ignore' });
  const s = Number(process.hrtime.bigint() - started) / 1e9;
  fs.rmSync(file);
  return mib / s;
}

async function main(): Promise<void> {
  const { bed, api } = await oneNodeBed({ clientNamespace: false });
  try {
    const targetDir = path.join(bed.shared, 'backups');
    fs.mkdirSync(targetDir, { recursive: true });
    await api('POST', '/v1/backup/target', { target: `dir:${targetDir}` });
    const volume = Math.ceil((args['size-mib'] * 2.5) / 1024) * 1024;
    await api('POST', '/v1/services', { type: 'postgres', name: 'pg', replicas: 1, volumeSizeMiB: volume });
    const active = (name: string) =>
      until(
        async () => (await api('GET', `/v1/service?name=${name}`)).status as string,
        (s) => s === 'ACTIVE',
        600_000,
        `${name} ACTIVE`,
      );
    await active('pg');
    const d = bed.nodes[0].docker!;
    const psql = (container: string, sql: string) => docker(d, ['exec', container, 'psql', '-h', '/var/run/postgresql', '-U', 'postgres', '-AtX', '-c', sql]);
    // Rows of 2 × 32 hex digits: they compress about as much as typical table data does (2:1).
    const rows = Math.ceil((args['size-mib'] * 1024 * 1024) / 100);
    log(`filling pg with ${rows} rows`);
    psql('firecampd-pg-pg-0', `CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 7)::text) AS t FROM generate_series(1, ${rows}) g`);
    psql('firecampd-pg-pg-0', 'CHECKPOINT');
    const sizeMib = Number(psql('firecampd-pg-pg-0', "SELECT pg_database_size(current_database()) + pg_database_size('template1')")) / 2 ** 20;
    log(`database: ${sizeMib.toFixed(0)} MiB`);

    const results: { backup: number; restore: number; disk: number }[] = [];
    for (let run = 0; run < args.runs; run++) {
      const disk = diskWrite(targetDir, args['size-mib']);
      let started = Date.now();
      const made = await api('POST', '/v1/backups', { service: 'pg' });
      const done = await until(
        async () => await api('GET', `/v1/backup?id=${String(made.id)}`),
        (b) => b.status === 'complete' || b.status === 'failed',
        1_800_000,
        'the backup',
      );
      if (done.status !== 'complete') throw new Error(`backup failed: ${String(done.message)}`);
      const backupS = (Date.now() - started) / 1000;
      started = Date.now();
      const as = `pgr${run}`;
      await api('POST', '/v1/backups/restore', { id: made.id, as });
      await active(as);
      const restoreS = (Date.now() - started) / 1000;
      const rowsBack = Number(psql(`firecampd-${as}-${as}-0`, 'SELECT count(*) FROM big'));
      if (rowsBack !== rows) throw new Error(`the restore has ${rowsBack} rows of ${rows}`);
      results.push({ backup: sizeMib / backupS, restore: sizeMib / restoreS, disk });
      log(`run ${run + 1}: backup ${backupS.toFixed(1)} s, restore ${restoreS.toFixed(1)} s, dd ${disk.toFixed(0)} MiB/s`);
      await api('POST', '/v1/services/delete', { name: as });
      await until(
        async () => (await bed.api(0, 'GET', `/v1/service?name=${as}`)).status,
        (s) => s === 404,
        300_000,
        `${as} deleted`,
      );
      await api('POST', '/v1/backups/delete', { id: made.id });
    }
    const out = {
      size_mib: Math.round(sizeMib),
      backup_mib_s: Math.round(median(results.map((r) => r.backup))),
      restore_mib_s: Math.round(median(results.map((r) => r.restore))),
      disk_write_mib_s: Math.round(median(results.map((r) => r.disk))),
      runs: results.map((r) => ({ backup_mib_s: Math.round(r.backup), restore_mib_s: Math.round(r.restore), disk_write_mib_s: Math.round(r.disk) })),
    };
    if (args.json) process.stdout.write(JSON.stringify(out) + '\n');
    else {
      const ratio = (x: number) => (x / out.disk_write_mib_s).toFixed(2);
      process.stdout.write(
        [
          `PostgreSQL database of ${out.size_mib} MiB, medians of ${args.runs} runs`,
          'what              MiB/s   of dd',
          `backup        ${String(out.backup_mib_s).padStart(9)}   ${ratio(out.backup_mib_s)}`,
          `restore       ${String(out.restore_mib_s).padStart(9)}   ${ratio(out.restore_mib_s)}`,
          `dd (same dir) ${String(out.disk_write_mib_s).padStart(9)}   1.00`,
        ].join('\n') + '\n',
      );
    }
  } finally {
    await bed.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:backup: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
