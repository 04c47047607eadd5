// npm run bench:controldb -- [--json] [--seconds 10] [--slice 2] [--runs 3] [--spread] [--clients 1 64]
//
// firecampd's controldb side by side with etcd: a 3-node cluster of each on
// this machine, both up for the whole bench. Each client owns one key and
// loops compare-and-set on it: one txn (compare mod_revision == the last one
// it wrote, then put a 100-byte value) — one HTTP request per operation. Each
// run measures every client count (default 1 and 64) on both systems: the
// run's seconds of each are cut into slices (default 2 s) that alternate
// between the two, taking turns at going first, so that a swing in the host's
// speed (this VM's moved a system from 230 to 464 ops/s between one 10-s
// window and the next) falls on both alike. The report gives, per client
// count, the medians over the runs of ops/s, p50 and p99 of each system and
// firecampd/etcd ratios, plus the RSS of the leader's process of each.
//
// The same for both: one client implementation (https-client.ts: Node's https
// module, a kept-alive agent with a socket per client, JSON bodies); HTTPS to
// the nodes with ECDSA P-256 certificates, mutual TLS between peers; all
// clients on the Raft leader (--spread: client i on node i mod 3, so followers
// forward); fsync on; fresh keys every measurement.
//
// What still differs:
// - firecampd checks a bearer token on every request; etcd runs without auth
//   (as most etcd deployments reached over loopback do): no token check.
// - etcd is reached through its JSON gateway (/v3/kv/txn), which wants keys
//   and values in base64 (bodies about a third larger) and passes each request
//   on as a gRPC call over a TLS connection to itself. etcd's own clients
//   speak gRPC and skip that hop; firecampd's JSON API is its native one.
// - Node and Go: each system runs as it ships (firecampd as its esbuild bundle).
// - While one system is measured the other idles beside it; the CPU it used
//   meanwhile is reported (other_cpu_pct), as is the CPU time per operation of
//   the measured system's three processes (cpu_ms_per_op).
import fs from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { b64, startEtcd, startFirecampd, type BenchCluster } from './cluster.ts';

type System = BenchCluster['name'];
const SYSTEMS: System[] = ['firecampd', 'etcd'];
const NODES = 3;

/** One compare-and-set through the cluster's client: the key's new mod_revision, or null if the compare failed. */
type Cas = (cluster: BenchCluster, endpoint: string, key: string, lastMod: number, value: string) => Promise<number | null>;

const CAS: Record<System, Cas> = {
  firecampd: async (cluster, endpoint, key, lastMod, value) => {
    const res = await cluster.client.request(endpoint, 'POST', '/v1/kv/txn', {
      compare: [{ key, target: 'mod_revision', op: '=', value: lastMod }],
      success: [{ put: { key, value } }],
    });
    if (res.status !== 200) throw new Error(`firecampd txn: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    const r = res.json as { succeeded: boolean; revision: number };
    return r.succeeded ? r.revision : null;
  },
  etcd: async (cluster, endpoint, key, lastMod, value) => {
    const res = await cluster.client.request(endpoint, 'POST', '/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: String(lastMod) }],
      success: [{ request_put: { key: b64(key), value: b64(value) } }],
    });
    if (res.status !== 200) throw new Error(`etcd txn: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    // The gateway leaves out false booleans and sends 64-bit numbers as strings.
    const r = res.json as { succeeded?: boolean; header: { revision: string } };
    return r.succeeded ? Number(r.header.revision) : null;
  },
};

interface Result {
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  ops: number;
  cas_failures: number;
  /** CPU time (user + system) of the measured cluster's processes per operation. */
  cpu_ms_per_op: number;
  /** CPU the other, idle cluster used meanwhile, in % of one core. */
  other_cpu_pct: number;
}

const round = (x: number) => Math.round(x * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/**
 * How long the clusters idle before their RSS is read: what a node holds while it idles for hours, not in the seconds
 * after its start. V8 gives the startup's garbage back some seconds later (its memory reducer, about 8 s in).
 */
const IDLE_SETTLE_MS = 20_000;

/** User + system CPU seconds of the processes (/proc/PID/stat, in clock ticks of 1/100 s on Linux). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime: fields 14 and 15
  }
  return ticks / 100;
}

let measurement = 0;

/** What one slice of load measured, to be added up over a run's slices. */
interface Slice {
  latencies: number[];
  elapsed: number;
  cpu: number;
  otherCpu: number;
  failures: number;
}

/** `clients` loops of compare-and-set for `seconds`; each stops by itself at the deadline or on the first error of any. */
async function workload(cluster: BenchCluster, other: BenchCluster, clients: number, seconds: number, spread: boolean): Promise<Slice> {
  const targets = spread ? cluster.endpoints : [await cluster.leader()];
  const run = ++measurement; // fresh keys each time, so that every first compare is against an absent key (mod_revision 0)
  const latencies: number[] = [];
  let failures = 0;
  let failed = false;
  const value = 'v'.repeat(100);
  const cpu0 = cpuSeconds(cluster.pids);
  const otherCpu0 = cpuSeconds(other.pids);
  const started = performance.now();
  const stopAt = started + seconds * 1000;
  const loops = await Promise.allSettled(
    Array.from({ length: clients }, async (_, i) => {
      const endpoint = targets[i % targets.length];
      const key = `bench/${process.pid}/${run}/${i}`;
      let last = 0;
      try {
        while (!failed && performance.now() < stopAt) {
          const t0 = performance.now();
          const rev = await CAS[cluster.name](cluster, endpoint, key, last, value);
          latencies.push(performance.now() - t0);
          if (rev === null)
            failures++; // only this client writes its key: a failure here is a bug
          else last = rev;
        }
      } catch (err) {
        failed = true;
        throw err;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = cpuSeconds(cluster.pids) - cpu0;
  const otherCpu = cpuSeconds(other.pids) - otherCpu0;
  const error = loops.find((l) => l.status === 'rejected');
  if (error) throw error.reason;
  return { latencies, elapsed, cpu, otherCpu, failures };
}

/** A run's slices of one system, added up: its operations over its own time, its percentiles over all its latencies. */
function result(slices: Slice[]): Result {
  const latencies = slices.flatMap((x) => x.latencies).sort((a, b) => a - b);
  const sum = (f: (x: Slice) => number) => slices.reduce((acc, x) => acc + f(x), 0);
  const elapsed = sum((x) => x.elapsed);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    ops_per_sec: Math.round(latencies.length / elapsed),
    p50_ms: round(q(0.5)),
    p99_ms: round(q(0.99)),
    ops: latencies.length,
    cas_failures: sum((x) => x.failures),
    cpu_ms_per_op: round((sum((x) => x.cpu) * 1000) / Math.max(1, latencies.length)),
    other_cpu_pct: round((sum((x) => x.otherCpu) / elapsed) * 100),
  };
}

/** The medians of a system's runs at one client count. */
function summary(runs: Result[]) {
  const med = (f: (r: Result) => number) => round(median(runs.map(f)));
  return {
    ops_per_sec: Math.round(median(runs.map((r) => r.ops_per_sec))),
    p50_ms: med((r) => r.p50_ms),
    p99_ms: med((r) => r.p99_ms),
    cpu_ms_per_op: med((r) => r.cpu_ms_per_op),
    other_cpu_pct: med((r) => r.other_cpu_pct),
    cas_failures: runs.reduce((s, r) => s + r.cas_failures, 0),
    runs: runs.map((r) => ({ ops_per_sec: r.ops_per_sec, p50_ms: r.p50_ms, p99_ms: r.p99_ms })),
  };
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON line instead of the table' })
    .option('seconds', { type: 'number', default: 10, describe: 'length of each measurement' })
    .option('runs', { type: 'number', default: 3, describe: 'runs; the report gives their medians' })
    .option('slice', { type: 'number', default: 2, describe: 'seconds of load on one system before the other takes its turn, within a run' })
    .option('spread', { type: 'boolean', default: false, describe: 'spread clients over all nodes instead of all on the leader' })
    .option('clients', { type: 'number', array: true, default: [1, 64], describe: 'client counts to measure in each run' })
    .check((a) => a.seconds > 0 && a.slice > 0 && a.runs >= 1 && a.clients.length > 0 && a.clients.every((n) => Number.isInteger(n) && n >= 1))
    .strict()
    .parseAsync();
  const counts = [...new Set(argv.clients)].sort((a, b) => a - b);
  const maxClients = Math.max(...counts);

  // Stop both clusters whatever happens: an error unwinds through finally; a signal or an exit kills what is left.
  const live: BenchCluster[] = [];
  process.on('exit', () => live.forEach((c) => c.kill()));
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      live.forEach((c) => c.kill());
      void Promise.race([Promise.allSettled(live.map((c) => c.stop())), sleep(15_000)]).finally(() => process.exit(code));
    });
  }

  try {
    const fc = await startFirecampd(NODES, maxClients);
    live.push(fc);
    const etcd = await startEtcd(NODES, maxClients);
    live.push(etcd);
    const clusters: Record<System, BenchCluster> = { firecampd: fc, etcd };
    const otherOf = (s: System) => clusters[s === 'firecampd' ? 'etcd' : 'firecampd'];
    const leaderPid = async (c: BenchCluster) => c.pids[c.endpoints.indexOf(await c.leader())];

    // Before any load: what a quiet node holds.
    const fcLeader = fc.endpoints.indexOf(await fc.leader());
    const watchdog = fc.watchdogPid?.(fcLeader);
    await sleep(IDLE_SETTLE_MS);
    const idleRss = { firecampd: rssMiB(fc.pids[fcLeader]), etcd: rssMiB(await leaderPid(etcd)) };
    const watchdogRss = watchdog === undefined ? null : rssMiB(watchdog);
    // Warm-up: connections (one per client), JIT, caches.
    for (const s of SYSTEMS) await workload(clusters[s], otherOf(s), maxClients, 1, argv.spread);

    const results = new Map<number, Record<System, Result[]>>(counts.map((n) => [n, { firecampd: [], etcd: [] }]));
    const slices = Math.max(1, Math.round(argv.seconds / argv.slice));
    for (let r = 0; r < argv.runs; r++) {
      for (const n of counts) {
        const run: Record<System, Slice[]> = { firecampd: [], etcd: [] };
        for (let k = 0; k < slices; k++) {
          const order = (r * slices + k) % 2 === 0 ? SYSTEMS : [...SYSTEMS].reverse();
          for (const s of order) run[s].push(await workload(clusters[s], otherOf(s), n, argv.seconds / slices, argv.spread));
        }
        for (const s of SYSTEMS) results.get(n)![s].push(result(run[s]));
      }
    }
    const afterLoadRss = rssMiB(await leaderPid(fc));

    const byClients = Object.fromEntries(
      counts.map((n) => {
        const f = summary(results.get(n)!.firecampd);
        const e = summary(results.get(n)!.etcd);
        return [
          String(n),
          {
            firecampd: f,
            etcd: e,
            throughput_ratio: round(f.ops_per_sec / e.ops_per_sec),
            p50_ratio: round(f.p50_ms / e.p50_ms),
            p99_ratio: round(f.p99_ms / e.p99_ms),
          },
        ];
      }),
    );
    const out = {
      by_clients: byClients,
      firecampd_idle_rss_mib: idleRss.firecampd,
      firecampd_rss_after_load_mib: afterLoadRss,
      etcd_idle_rss_mib: idleRss.etcd,
      // Not in the figures above: a firecampd node also runs a fencing watchdog process beside the daemon.
      firecampd_watchdog_idle_rss_mib: watchdogRss,
      nodes: NODES,
      seconds: argv.seconds,
      slice_seconds: argv.seconds / slices,
      runs: argv.runs,
      spread: argv.spread,
    };

    if (argv.json) {
      process.stdout.write(JSON.stringify(out) + '\n');
    } else {
      // Columns: clients, system, then numbers (ops/s whole, the rest with two decimals).
      const cell = (x: string | number, i: number) => (typeof x === 'number' && i > 2 ? x.toFixed(2) : String(x));
      const cells = (xs: (string | number)[]) => xs.map((x, i) => (i === 1 ? cell(x, i).padEnd(15) : cell(x, i).padStart(i === 0 ? 7 : 9))).join('  ');
      const lines = [
        `firecampd and etcd, ${NODES} nodes each, clients on ${argv.spread ? 'all nodes' : 'the leader'}, ${argv.seconds} s per measurement in slices of ${argv.seconds / slices} s taking turns, median of ${argv.runs} run${argv.runs === 1 ? '' : 's'}`,
        cells(['clients', 'system', 'ops/s', 'p50 ms', 'p99 ms', 'CPU ms/op']),
      ];
      for (const n of counts) {
        const b = byClients[String(n)];
        lines.push(cells([n, 'firecampd', b.firecampd.ops_per_sec, b.firecampd.p50_ms, b.firecampd.p99_ms, b.firecampd.cpu_ms_per_op]));
        lines.push(cells([n, 'etcd', b.etcd.ops_per_sec, b.etcd.p50_ms, b.etcd.p99_ms, b.etcd.cpu_ms_per_op]));
        lines.push(cells([n, 'firecampd/etcd', b.throughput_ratio.toFixed(2), b.p50_ratio, b.p99_ratio, '']));
      }
      lines.push(`CPU ms/op: user + system CPU of the system's ${NODES} processes per operation`);
      lines.push(`RSS of the leader's process: firecampd ${idleRss.firecampd} MiB idle, ${afterLoadRss} MiB after the load; etcd ${idleRss.etcd} MiB idle`);
      lines.push(`(a firecampd node also runs a fencing watchdog process: ${watchdogRss ?? '?'} MiB idle)`);
      process.stdout.write(lines.join('\n') + '\n');
    }
    if (counts.some((n) => byClients[String(n)].firecampd.cas_failures > 0 || byClients[String(n)].etcd.cas_failures > 0)) {
      process.stderr.write('compare-and-set failed on a key only one client writes: that is a bug\n');
      process.exitCode = 1;
    }
  } finally {
    await Promise.allSettled(live.map((c) => c.stop()));
    live.length = 0;
  }
}

await main();
