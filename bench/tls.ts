// npm run bench:tls -- [--runs 3] [--seconds 10] [--json]
// What TLS costs a client, on the test bed (one node with its dockerd, a
// client namespace): a PostgreSQL service and a Redis service with TLS (the
// default) beside the same types with --tls off, each one member, all on the
// node at once. The same client for both sides, from the client namespace:
// pgbench (its simple-update script, 4 connections kept open, --seconds;
// sslmode=verify-full against `service ca` for TLS, disable for the other)
// and redis-benchmark (SET and GET, 16 connections, 50,000 requests each;
// --tls --cacert for TLS). The two sides take turns, --runs times each;
// medians, and the ratio TLS/plaintext per client (1.0: TLS costs nothing).
//
// --json prints one line: {"runs", "postgres": {"tls_tps", "plain_tps", "ratio"}, "redis_set": {…_rps…}, "redis_get": {…}}.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { median, oneNodeBed, until } from './wait.ts';
import { tempDir } from '../test/helpers/proc.ts';

const execFileAsync = promisify(execFile);
const args = yargs(hideBin(process.argv))
  .option('runs', { type: 'number', default: 3, describe: 'runs of each side' })
  .option('seconds', { type: 'number', default: 10, describe: "each pgbench run's length" })
  .option('json', { type: 'boolean', default: false })
  .strict()
  .parseSync();

const log = (s: string) => process.stderr.write(`bench:tls: ${s}\n`);

interface Side {
  tls: boolean;
  pg: { ip: string; password: string };
  redis: { ip: string; password: string };
}

async function main(): Promise<void> {
  const { bed, api } = await oneNodeBed({ clientNamespace: true });
  try {
    const services = [
      { type: 'postgres', name: 'pgtls' },
      { type: 'postgres', name: 'pgplain', tls: 'off' },
      { type: 'redis', name: 'redistls' },
      { type: 'redis', name: 'redisplain', tls: 'off' },
    ];
    for (const s of services) await api('POST', '/v1/services', { ...s, replicas: 1, volumeSizeMiB: 256 });
    const view = async (name: string) => {
      const v = await until(
        async () => (await api('GET', `/v1/service?name=${name}`)) as { status: string; members: { ip: string }[] },
        (x) => x.status === 'ACTIVE',
        300_000,
        `${name} ACTIVE`,
      );
      const creds = (await api('GET', `/v1/service/credentials?name=${name}`)).credentials as { user?: string; value: string }[];
      return { ip: v.members[0].ip, password: creds.find((c) => c.user === 'postgres' || c.user === 'default')!.value };
    };
    const caFile = path.join(tempDir(), 'ca.crt');
    fs.writeFileSync(caFile, (await api('GET', '/v1/service/ca?name=pgtls')).ca as string);
    const sides: Side[] = [
      { tls: true, pg: await view('pgtls'), redis: await view('redistls') },
      { tls: false, pg: await view('pgplain'), redis: await view('redisplain') },
    ];
    const inClient = (cmd: string[], env: Record<string, string> = {}) =>
      execFileAsync('nsenter', [`--net=/var/run/netns/${bed.client!.ns}`, ...cmd], { encoding: 'utf8', timeout: 600_000, env: { ...process.env, ...env } });
    const pgEnv = (s: Side) => ({
      PGPASSWORD: s.pg.password,
      PGSSLMODE: s.tls ? 'verify-full' : 'disable',
      PGSSLROOTCERT: caFile,
    });
    for (const s of sides) await inClient(['pgbench', '-i', '-q', '-s', '4', '-h', s.pg.ip, '-U', 'postgres', 'postgres'], pgEnv(s));

    const pgbench = async (s: Side): Promise<number> => {
      const { stdout } = await inClient(
        ['pgbench', '-N', '-c', '4', '-j', '2', '-T', String(args.seconds), '-h', s.pg.ip, '-U', 'postgres', 'postgres'],
        pgEnv(s),
      );
      const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(stdout)?.[1];
      if (!tps) throw new Error(`pgbench printed no tps:\n${stdout}`);
      return Number(tps);
    };
    const redisBench = async (s: Side): Promise<{ set: number; get: number }> => {
      const tls = s.tls ? ['--tls', '--cacert', caFile] : [];
      const { stdout } = await inClient([
        'redis-benchmark',
        ...tls,
        '-h',
        s.redis.ip,
        '-a',
        s.redis.password,
        '-t',
        'set,get',
        '-n',
        '50000',
        '-c',
        '16',
        '--csv',
      ]);
      const rps = (test: string) => Number(new RegExp(`^"${test}","([\\d.]+)"`, 'm').exec(stdout)?.[1]);
      const out = { set: rps('SET'), get: rps('GET') };
      if (!out.set || !out.get) throw new Error(`redis-benchmark printed no rates:\n${stdout}`);
      return out;
    };

    const results = { tls: [] as { pg: number; set: number; get: number }[], plain: [] as { pg: number; set: number; get: number }[] };
    for (let run = 0; run < args.runs; run++) {
      // Taking turns, the side that goes first alternating: neither gets the warmer machine every time.
      for (const s of run % 2 === 0 ? sides : [...sides].reverse()) {
        const pg = await pgbench(s);
        const r = await redisBench(s);
        (s.tls ? results.tls : results.plain).push({ pg, ...r });
        log(`run ${run + 1} ${s.tls ? 'TLS' : 'plaintext'}: postgres ${pg.toFixed(0)} tps, redis SET ${r.set.toFixed(0)}/s GET ${r.get.toFixed(0)}/s`);
      }
    }
    const pair = (k: 'pg' | 'set' | 'get') => {
      const on = median(results.tls.map((r) => r[k]));
      const off = median(results.plain.map((r) => r[k]));
      return { on: Math.round(on), off: Math.round(off), ratio: Math.round((on / off) * 100) / 100 };
    };
    const pg = pair('pg');
    const set = pair('set');
    const get = pair('get');
    const out = {
      runs: args.runs,
      postgres: { tls_tps: pg.on, plain_tps: pg.off, ratio: pg.ratio },
      redis_set: { tls_rps: set.on, plain_rps: set.off, ratio: set.ratio },
      redis_get: { tls_rps: get.on, plain_rps: get.off, ratio: get.ratio },
    };
    if (args.json) process.stdout.write(JSON.stringify(out) + '\n');
    else {
      const rows = [
        ['client', 'TLS', 'plaintext', 'TLS/plaintext'],
        ['pgbench simple-update (tps)', pg.on, pg.off, pg.ratio],
        ['redis-benchmark SET (req/s)', set.on, set.off, set.ratio],
        ['redis-benchmark GET (req/s)', get.on, get.off, get.ratio],
      ].map((r) => r.map(String));
      const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
      process.stdout.write(`What TLS costs a client, medians of ${args.runs} runs a side\n`);
      for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i])).join('  ') + '\n');
    }
  } finally {
    await bed.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:tls: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
