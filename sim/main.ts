// npm run sim -- --seeds N [--seed S] [--first F] [--json] [--workers W]
// Runs N seeded simulations (or replays one) and exits non-zero on any violation.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { runSeed, type RunResult } from './run.ts';

export interface Summary {
  seeds: number;
  steps: number;
  violations: number;
  liveness_failures: number;
  elapsed_ms: number;
  stats: Record<string, number>;
  failures: { seed: number; kind: string; detail: string }[];
}

export function summarize(results: RunResult[]): Omit<Summary, 'elapsed_ms'> {
  const stats: Record<string, number> = {};
  const failures: Summary['failures'] = [];
  let steps = 0;
  let violations = 0;
  let liveness = 0;
  for (const r of results) {
    steps += r.steps;
    for (const [k, v] of Object.entries(r.stats)) stats[k] = (stats[k] ?? 0) + v;
    for (const v of r.violations) {
      if (v.kind === 'liveness') liveness++;
      else violations++;
      failures.push({ seed: r.seed, kind: v.kind, detail: v.detail });
    }
  }
  return { seeds: results.length, steps, violations, liveness_failures: liveness, stats, failures };
}

async function runParallel(first: number, count: number, workers: number): Promise<RunResult[]> {
  const results: RunResult[] = [];
  const chunk = 50;
  let next = first;
  const end = first + count;
  await Promise.all(
    Array.from(
      { length: Math.min(workers, Math.ceil(count / chunk)) },
      () =>
        new Promise<void>((resolve, reject) => {
          const w = new Worker(new URL('./worker.mjs', import.meta.url));
          const feed = () => {
            if (next >= end) {
              void w.terminate().then(() => resolve());
              return;
            }
            const from = next;
            next = Math.min(end, next + chunk);
            w.postMessage({ from, to: next });
          };
          w.on('message', (batch: RunResult[]) => {
            results.push(...batch);
            feed();
          });
          w.on('error', reject);
          feed();
        }),
    ),
  );
  return results.sort((a, b) => a.seed - b.seed);
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('seeds', { type: 'number', default: 1000, describe: 'how many seeds to run' })
    .option('first', { type: 'number', default: 1, describe: 'first seed' })
    .option('seed', { type: 'number', describe: 'replay this one seed' })
    .option('json', { type: 'boolean', default: false })
    .option('workers', { type: 'number', default: os.availableParallelism(), describe: 'worker threads' })
    .strict()
    .parseAsync();
  const t0 = Date.now();
  const results = argv.seed !== undefined ? [runSeed(argv.seed)] : await runParallel(argv.first, argv.seeds, Math.max(1, argv.workers));
  const summary: Summary = { ...summarize(results), elapsed_ms: Date.now() - t0 };
  if (argv.json) {
    process.stdout.write(JSON.stringify({ ...summary, failures: summary.failures.slice(0, 20) }) + '\n');
  } else {
    const s = summary.stats;
    process.stdout.write(
      [
        `seeds               ${summary.seeds}`,
        `simulated ticks     ${summary.steps}`,
        `messages delivered  ${s.delivered}`,
        `proposals acked     ${s.acked} of ${s.proposals}`,
        `reads served        ${s.readsServed} of ${s.reads}`,
        `elections           ${s.elections}`,
        `crashes             ${s.crashes}`,
        `partitions          ${s.partitions}`,
        `snapshots           ${s.snapshots}`,
        `membership changes  ${s.confChanges}`,
        `leader transfers    ${s.transfers}`,
        `safety violations   ${summary.violations}`,
        `liveness failures   ${summary.liveness_failures}`,
        `elapsed             ${(summary.elapsed_ms / 1000).toFixed(1)} s`,
      ].join('\n') + '\n',
    );
  }
  for (const f of summary.failures.slice(0, 10)) {
    process.stderr.write(`seed ${f.seed}: ${f.kind}: ${f.detail}\n  replay: npm run sim -- --seed ${f.seed}\n`);
  }
  process.exitCode = summary.failures.length > 0 ? 1 : 0;
}

await main();
