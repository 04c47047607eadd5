// npm run bench:raft -- [--json] [--seconds 5] [--runs 3]
// Three Raft nodes in one process over real loopback WebSockets with SQLite
// storage (fsync on). Proposals/s and commit latency (propose -> applied on
// the leader) with 1 and with 64 concurrent proposers; medians of the runs.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { tempDir } from '../test/helpers/proc.ts';
import { startMember, stopMember, until, type Member } from '../test/helpers/raft-members.ts';
import { median } from './wait.ts';

interface Result {
  ops_per_sec: number;
  p50_ms: number;
  p99_ms: number;
}

async function load(leader: Member, proposers: number, seconds: number): Promise<Result> {
  const payload = Buffer.alloc(100, 'x');
  const lat: number[] = [];
  const stopAt = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: proposers }, async () => {
      while (performance.now() < stopAt) {
        const s = performance.now();
        await leader.node.propose(payload);
        lat.push(performance.now() - s);
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] * 100) / 100;
  return { ops_per_sec: Math.round(lat.length / elapsed), p50_ms: q(0.5), p99_ms: q(0.99) };
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('json', { type: 'boolean', default: false })
    .option('seconds', { type: 'number', default: 5 })
    .option('runs', { type: 'number', default: 3 })
    .strict()
    .parseAsync();
  const ids = ['a', 'b', 'c'];
  const members: Member[] = [];
  try {
    for (const id of ids) members.push(await startMember(id, tempDir('bench-raft-'), ids, 0, { tickMs: 100 }));
    await until(() => members.some((m) => m.node.status().role === 'leader'), 10_000, 'a leader');
    const leader = members.find((m) => m.node.status().role === 'leader')!;
    await load(leader, 64, 1); // warm-up
    const out: Record<string, Result> = {};
    for (const p of [1, 64]) {
      const runs: Result[] = [];
      for (let r = 0; r < argv.runs; r++) runs.push(await load(leader, p, argv.seconds));
      out[`proposers_${p}`] = {
        ops_per_sec: median(runs.map((r) => r.ops_per_sec)),
        p50_ms: median(runs.map((r) => r.p50_ms)),
        p99_ms: median(runs.map((r) => r.p99_ms)),
      };
    }
    if (argv.json) process.stdout.write(JSON.stringify(out) + '\n');
    else {
      process.stdout.write(`3 nodes, loopback WebSockets, SQLite with fsync; median of ${argv.runs} runs of ${argv.seconds} s\n`);
      process.stdout.write('proposers     ops/s    p50 ms    p99 ms\n');
      for (const [k, r] of Object.entries(out)) {
        process.stdout.write(
          `${k.replace('proposers_', '').padEnd(9)}  ${String(r.ops_per_sec).padStart(8)}  ${String(r.p50_ms).padStart(8)}  ${String(r.p99_ms).padStart(8)}\n`,
        );
      }
    }
  } finally {
    for (const m of members) await stopMember(m);
  }
}

await main();
