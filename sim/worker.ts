// A worker thread of `npm run sim`: runs the seed ranges it is sent.
import { parentPort } from 'node:worker_threads';
import { runSeed, type RunResult } from './run.ts';

parentPort!.on('message', ({ from, to }: { from: number; to: number }) => {
  const out: RunResult[] = [];
  for (let s = from; s < to; s++) out.push(runSeed(s));
  parentPort!.postMessage(out);
});
