// npm run jepsen -- --runs N [--seconds S] [--seed S] [--json]
// Prints {"runs":N,"ops":…,"violations":0,"lost_acked_writes":0}; exits non-zero on
// a violation, a lost write or a check that ran out of time. A failing run's
// history is saved for replay in the checker.
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { describeViolation, saveHistory } from './linearizability.ts';
import { jepsenRun } from './run.ts';

const argv = await yargs(hideBin(process.argv))
  .option('runs', { type: 'number', default: 1 })
  .option('seconds', { type: 'number', default: 10 })
  .option('seed', { type: 'number', default: 1, describe: 'seed of the first run' })
  .option('json', { type: 'boolean', default: false })
  .strict()
  .parseAsync();

const totals = { runs: 0, ops: 0, unknown_ops: 0, violations: 0, unknown_verdicts: 0, acked_writes: 0, lost_acked_writes: 0, histories: [] as string[] };
for (let i = 0; i < argv.runs; i++) {
  const r = await jepsenRun({ seed: argv.seed + i, seconds: argv.seconds, log: argv.json ? undefined : (l) => process.stderr.write(l + '\n') });
  totals.runs++;
  totals.ops += r.ops;
  totals.unknown_ops += r.unknown;
  totals.acked_writes += r.ackedWrites;
  totals.lost_acked_writes += r.lostAckedWrites;
  if (r.verdict.result !== 'ok' || r.lostAckedWrites > 0) {
    const file = path.join(os.tmpdir(), `firecampd-jepsen-seed${r.seed}.jsonl`);
    saveHistory(file, r.history);
    totals.histories.push(file);
    if (r.verdict.result === 'violation') {
      totals.violations++;
      process.stderr.write(describeViolation(r.verdict) + `\nhistory saved to ${file}\nfaults: ${r.faults.join('; ')}\n`);
    } else if (r.verdict.result === 'unknown') {
      totals.unknown_verdicts++;
      process.stderr.write(`seed ${r.seed}: ${r.verdict.reason}\n`);
    }
  }
}
process.stdout.write(JSON.stringify(totals) + '\n');
process.exitCode = totals.violations + totals.lost_acked_writes + totals.unknown_verdicts > 0 ? 1 : 0;
