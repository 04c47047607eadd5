// A PostgreSQL client for the end-to-end tests, run in the test bed's client
// namespace. It finds the primary by its DNS name through a node's embedded
// DNS server, anew on every connection, as a client of a moving primary must.
//
//   pg-client.ts --dns IP:53[,IP:53…] --host primary.pg.fc.test --password P [--ca FILE] insert N
//       inserts rows 1..N, each acknowledged before the next; prints {"acked": N}
//   … load
//       inserts until stdin closes; prints {"ready":true} after its first
//       acknowledged insert, {"resumedAt", "gapMs", "id"} after each outage of
//       over a second, and at the end {"acked": [first, last], "errors", "longestGapMs", "messages"};
//       with --stamps, before that, {"stamps": [[id, sentMs, ackedMs], …]}
//   … count
//       prints {"rows": N, "max": M} as the primary sees it
//
// With --ca (what `service ca` printed) it speaks TLS only, and checks the
// server's certificate against that CA for the name it dialled
// (verify-full), though it connects to the address DNS gave.
//
// Every insert is idempotent (ON CONFLICT DO NOTHING), so one retried after
// a cut connection never counts twice, and a row counts as acknowledged only
// once its COMMIT returned.
import dns from 'node:dns';
import fs from 'node:fs';
import pg from 'pg';
import { writeLoop } from './write-loop.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`pg-client: ${name} is required`);
  return args[i + 1];
};
// Every node's DNS server, tried in turn: the one asked first may be on the node that died.
const dnsServers = flag('--dns').split(',');
const host = flag('--host');
const password = flag('--password');
const user = args.includes('--user') ? flag('--user') : 'postgres';
const ssl = args.includes('--ca') ? { ca: fs.readFileSync(flag('--ca'), 'utf8'), servername: host, rejectUnauthorized: true } : false;
const mode = args.at(-2) === 'insert' ? 'insert' : args.at(-1)!;

const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
resolver.setServers(dnsServers);

async function connect(): Promise<pg.Client> {
  const [ip] = await resolver.resolve4(host);
  const c = new pg.Client({ host: ip, port: 5432, user, password, ssl, database: 'postgres', connectionTimeoutMillis: 2000, query_timeout: 5000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

let client: pg.Client | undefined;
async function query(sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  try {
    client ??= await connect();
    return await client.query(sql, params);
  } catch (err) {
    const c = client;
    client = undefined;
    await c?.end().catch(() => {});
    throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ensureTable(): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await query('CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY, at timestamptz DEFAULT now())');
      return;
    } catch (err) {
      if (i >= 100) throw err;
      await sleep(200);
    }
  }
}

async function main(): Promise<void> {
  if (mode === 'count') {
    const r = await query('SELECT count(*)::bigint AS n, coalesce(max(id), 0)::bigint AS m FROM acked');
    process.stdout.write(JSON.stringify({ rows: Number(r.rows[0].n), max: Number(r.rows[0].m) }) + '\n');
    return;
  }
  await ensureTable();
  const start = mode === 'insert' ? 1 : Number((await query('SELECT coalesce(max(id), 0)::bigint AS m FROM acked')).rows[0].m) + 1;
  await writeLoop({
    start,
    ...(mode === 'insert' ? { end: Number(args.at(-1)) } : {}),
    stamps: args.includes('--stamps'),
    write: async (id) => {
      await query('INSERT INTO acked (id) VALUES ($1) ON CONFLICT DO NOTHING', [id]);
    },
  });
}

main()
  .then(() => client?.end())
  .then(
    // Only once stdout is written out: to a pipe, process.exit() would cut a long last line.
    () => process.stdout.write('', () => process.exit(0)),
    (err: Error) => {
      process.stderr.write(`pg-client: ${err.message}\n`);
      process.exit(1);
    },
  );
