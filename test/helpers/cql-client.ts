// A Cassandra client for the end-to-end tests, run in the test bed's client
// namespace (cassandra-driver, the DataStax Node.js driver). It finds the
// members by their DNS names through the nodes' embedded DNS servers and
// logs in as the service's superuser.
//
//   cql-client.ts --dns IP:53[,…] --hosts cs-0.cs.fc.test,… --password P --table a setup
//       makes keyspace t (NetworkTopologyStrategy, 3 replicas in the members' datacenter) and table t.a
//   … --table a insert N
//       writes rows 1 … N at QUORUM, each acknowledged before the next; prints {"acked": [1, N], …}
//   … --table b load
//       writes rows 1, 2 … at QUORUM and reads each back at QUORUM, until stdin closes; prints
//       {"ready":true} after the first, {"resumedAt", "gapMs", "id"} after each outage of over a
//       second, {"staleRead": id, "at", "shownAfterMs"} for a row a quorum read missed at first and
//       found later, and at the end {"acked": [first, last], "errors", "longestGapMs", "messages"};
//       a row not read back within 15 s ends it with {"violation"} (exit code 3)
//   … --table a check N [--only HOST --consistency one]
//       reads the table (at QUORUM, or at ONE from HOST alone) and prints
//       {"present": K, "missing": [up to 20 of 1..N], "missingCount", "extra"}
//
// A write that timed out may still have landed: it is retried (writes are
// idempotent), and a row counts as acknowledged only once a quorum answered.
import dns from 'node:dns';
import cassandra from 'cassandra-driver';
import { writeLoop } from './write-loop.ts';

const args = process.argv.slice(2);
const flag = (name: string, fallback?: string) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) {
    if (fallback !== undefined) return fallback;
    throw new Error(`cql-client: ${name} is required`);
  }
  return args[i + 1];
};
const modes = ['setup', 'insert', 'load', 'check'];
const modeAt = args.findIndex((a) => modes.includes(a));
if (modeAt < 0) throw new Error(`cql-client: one of ${modes.join(', ')} is required`);
const mode = args[modeAt];
const count = Number(args[modeAt + 1]);
const table = flag('--table');
const only = flag('--only', '');
const { consistencies } = cassandra.types;
const { policies } = cassandra;
const consistency = flag('--consistency', 'quorum') === 'one' ? consistencies.one : consistencies.quorum;

async function addresses(): Promise<string[]> {
  const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 2 });
  resolver.setServers(flag('--dns').split(','));
  return Promise.all(
    flag('--hosts')
      .split(',')
      .map(async (n) => (await resolver.resolve4(n))[0]),
  );
}

async function main(): Promise<void> {
  const hosts = only ? [only] : await addresses();
  const client = new cassandra.Client({
    contactPoints: hosts.map((h) => `${h}:9042`),
    authProvider: new cassandra.auth.PlainTextAuthProvider('admin', flag('--password')),
    // Round robin over every member, whichever datacenter; with --only, that member alone.
    policies: {
      loadBalancing: only
        ? new policies.loadBalancing.AllowListPolicy(new policies.loadBalancing.RoundRobinPolicy(), [`${only}:9042`])
        : new policies.loadBalancing.RoundRobinPolicy(),
    },
    // A dead machine answers nothing: give up on it after 2 s and try the next member (the writes are idempotent).
    socketOptions: { connectTimeout: 3000, readTimeout: 2000 },
  });
  await client.connect();
  try {
    const options = { prepare: true, consistency, isIdempotent: true };
    if (mode === 'setup') {
      const dcs = [...new Set(client.hosts.values().map((h) => h.datacenter))];
      const replication = dcs.map((dc) => `'${dc}': 3`).join(', ');
      await client.execute(`CREATE KEYSPACE IF NOT EXISTS t WITH replication = {'class': 'NetworkTopologyStrategy', ${replication}}`);
      await client.execute(`CREATE TABLE IF NOT EXISTS t.${table} (id int PRIMARY KEY, v text)`);
      process.stdout.write(JSON.stringify({ ok: true, dcs }) + '\n');
      return;
    }
    if (mode === 'check') {
      const seen = new Set<number>();
      // Every row, paged: a read at QUORUM, or at ONE from the one member named.
      let pageState: string | undefined;
      do {
        const rs = await client.execute(`SELECT id FROM t.${table}`, [], { ...options, fetchSize: 2000, ...(pageState ? { pageState } : {}) });
        for (const row of rs.rows) seen.add(row.get('id') as number);
        pageState = rs.pageState ?? undefined;
      } while (pageState);
      const missing = Array.from({ length: count }, (_, i) => i + 1).filter((id) => !seen.has(id));
      const extra = [...seen].filter((id) => id < 1 || id > count).length;
      process.stdout.write(JSON.stringify({ present: count - missing.length, missing: missing.slice(0, 20), missingCount: missing.length, extra }) + '\n');
      return;
    }
    const insert = `INSERT INTO t.${table} (id, v) VALUES (?, ?)`;
    const select = `SELECT v FROM t.${table} WHERE id = ?`;
    await writeLoop({
      start: 1,
      ...(mode === 'insert' ? { end: count } : {}),
      write: async (id) => {
        await client.execute(insert, [id, `row ${id}`], options);
        if (mode !== 'load') return;
        // The read at QUORUM must see what the write at QUORUM acknowledged, whichever members answer.
        const readBack = async () => (await client.execute(select, [id], options)).first()?.get('v') === `row ${id}`;
        if (await readBack()) return;
        // A miss is reported, never retried away as an error. While ranges move (a scale), Cassandra 5.0's
        // coordinators learn the ring by gossip, a moment apart: one that still has the old ring may read replicas
        // the write's coordinator no longer wrote (CASSANDRA-18758; CEP-21's transactional metadata ends it). The
        // row must then show within the gossip's settling; a row no quorum read finds in 15 s is a lost write.
        const missedAt = new Date().toISOString();
        const until = Date.now() + 15_000;
        while (Date.now() < until) {
          await new Promise((r) => setTimeout(r, 250));
          if (await readBack().catch(() => false)) {
            process.stdout.write(JSON.stringify({ staleRead: id, at: missedAt, shownAfterMs: Date.now() - Date.parse(missedAt) }) + '\n');
            return;
          }
        }
        process.stdout.write(JSON.stringify({ violation: `row ${id} acknowledged at QUORUM but not read back at QUORUM for 15 s`, at: missedAt }) + '\n');
        process.exit(3);
      },
    });
  } finally {
    await client.shutdown();
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`cql-client: ${err.message}\n`);
    process.exit(1);
  },
);
