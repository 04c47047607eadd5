import { runSeed } from './run.ts';
const n = Number(process.argv[2] ?? 200);
const t0 = Date.now();
let bad = 0, steps = 0;
const agg: Record<string, number> = {};
for (let s = 1; s <= n; s++) {
  const r = runSeed(s);
  steps += r.steps;
  for (const [k, v] of Object.entries(r.stats)) agg[k] = (agg[k] ?? 0) + v;
  if (r.violations.length) { bad++; if (bad <= 5) console.log(s, r.voters, r.violations.slice(0, 3)); }
}
console.log({ n, bad, steps, ms: Date.now() - t0, agg });
