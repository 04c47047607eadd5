// npm run bench:controldb -- [--json] [--seconds 10] [--clients 64] [--runs 3]
// 64 clients, each owning one key, loop txn(compare mod_revision == last,
// then put), one request per operation, against a 3-node firecampd cluster
// and then, with the same client code, a 3-node etcd cluster (its /v3 JSON
// gateway). Reports ops/s, p50 and p99 of each (median of the runs), their
// ratio, and the idle RSS of one firecampd node.
import fs from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { b64, startEtcd, startFirecampd, type BenchCluster } from './cluster.ts';

/** One compare-and-set; returns the key's new mod_revision, or null if the compare failed. */
type Cas = (cluster: BenchCluster, endpoint: string, key: string, lastMod: number, value: string) => Promise<number | null>;

// firecampd over HTTPS with kept-alive connections (its API has no plain-HTTP mode).
const firecampdCas: Cas = async (cluster, endpoint, key, lastMod, value) => {
  const res = await cluster.client!(endpoint).raw('POST', '/v1/kv/txn', {
    compare: [{ key, target: 'mod_revision', op: '=', value: lastMod }],
    success: [{ put: { key, value } }],
  });
  if (res.status !== 200) throw new Error(`firecampd txn: HTTP ${res.status} ${JSON.stringify(res.json)}`);
  const r = res.json as { succeeded: boolean; revision: number };
  return r.succeeded ? r.revision : null;
};

const etcdCas: Cas = async (_cluster, endpoint, key, lastMod, value) => {
  const res = await fetch(`${endpoint}/v3/kv/txn`, {
    method: 'POST',
    body: JSON.stringify({
      compare: [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: String(lastMod) }],
      success: [{ request_put: { key: b64(key), value: b64(value) } }],
    }),
  });
  if (!res.ok) throw new Error(`etcd txn: HTTP ${res.status} ${await res.text()}`);
  const r = (await res.json()) as { succeeded?: boolean; header: { revision: string } };
  return r.succeeded ? Number(r.header.revision) : null;
};

interface Result {
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
  ops: number;
  cas_failures: number;
}

let workloadRun = 0;

async function workload(cluster: BenchCluster, cas: Cas, clients: number, seconds: number): Promise<Result> {
  const run = ++workloadRun; // fresh keys each run, so that every first compare is against an absent key
  const latencies: number[] = [];
  let failures = 0;
  const value = 'v'.repeat(100);
  const stopAt = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const endpoint = cluster.endpoints[i % cluster.endpoints.length];
      const key = `bench/${process.pid}/${run}/${i}`;
      let last = 0;
      while (performance.now() < stopAt) {
        const t0 = performance.now();
        const rev = await cas(cluster, endpoint, key, last, value);
        latencies.push(performance.now() - t0);
        if (rev === null)
          failures++; // only this client writes its key: a failure here is a bug
        else last = rev;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  return {
    ops_per_sec: Math.round(latencies.length / elapsed),
    p50_ms: round(q(0.5)),
    p99_ms: round(q(0.99)),
    ops: latencies.length,
    cas_failures: failures,
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

async function measure(start: () => Promise<BenchCluster>, cas: Cas, clients: number, seconds: number, runs: number) {
  const cluster = await start();
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const idleRss = rssMiB(cluster.pids[0]); // before any load: what a quiet node holds
    await workload(cluster, cas, clients, 1); // warm-up: connections, JIT, SQLite caches
    const results: Result[] = [];
    for (let r = 0; r < runs; r++) results.push(await workload(cluster, cas, clients, seconds));
    return {
      result: {
        ops_per_sec: median(results.map((r) => r.ops_per_sec)),
        p50_ms: median(results.map((r) => r.p50_ms)),
        p99_ms: median(results.map((r) => r.p99_ms)),
        cas_failures: results.reduce((s, r) => s + r.cas_failures, 0),
        runs: results,
      },
      cluster,
      idleRss,
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('json', { type: 'boolean', default: false })
    .option('seconds', { type: 'number', default: 10 })
    .option('clients', { type: 'number', default: 64 })
    .option('runs', { type: 'number', default: 3 })
    .strict()
    .parseAsync();

  const fc = await measure(() => startFirecampd(3), firecampdCas, argv.clients, argv.seconds, argv.runs);
  const afterLoadRss = rssMiB(fc.cluster.pids[0]);
  await fc.cluster.stop();
  const etcd = await measure(() => startEtcd(3), etcdCas, argv.clients, argv.seconds, argv.runs);
  await etcd.cluster.stop();

  const out = {
    clients: argv.clients,
    seconds: argv.seconds,
    runs: argv.runs,
    firecampd: fc.result,
    etcd: etcd.result,
    throughput_ratio: round(fc.result.ops_per_sec / etcd.result.ops_per_sec),
    p99_ratio: round(fc.result.p99_ms / etcd.result.p99_ms),
    firecampd_idle_rss_mib: fc.idleRss,
    firecampd_rss_after_load_mib: afterLoadRss,
    etcd_idle_rss_mib: etcd.idleRss,
  };
  if (argv.json) {
    process.stdout.write(JSON.stringify(out) + '\n');
  } else {
    const row = (n: string, r: Pick<Result, 'ops_per_sec' | 'p50_ms' | 'p99_ms'>) =>
      `${n.padEnd(10)}  ${String(r.ops_per_sec).padStart(8)}  ${String(r.p50_ms).padStart(8)}  ${String(r.p99_ms).padStart(8)}`;
    process.stdout.write(
      [
        `${argv.clients} clients, ${argv.seconds} s, median of ${argv.runs} runs`,
        `system         ops/s    p50 ms    p99 ms`,
        row('firecampd', fc.result),
        row('etcd', etcd.result),
        `throughput ratio firecampd/etcd: ${out.throughput_ratio}; p99 ratio: ${out.p99_ratio}`,
        `idle RSS of one node: firecampd ${fc.idleRss} MiB (${afterLoadRss} MiB after the load), etcd ${etcd.idleRss} MiB`,
      ].join('\n') + '\n',
    );
  }
  if (fc.result.cas_failures > 0 || etcd.result.cas_failures > 0) {
    process.stderr.write('compare-and-set failed on a key only one client writes: that is a bug\n');
    process.exitCode = 1;
  }
}

await main();
