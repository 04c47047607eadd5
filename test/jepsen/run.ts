// A Jepsen-style run against a real 3-node firecampd cluster, each node in
// its own network namespace (test/bed): clients do reads, writes and
// compare-and-set on a few keys while a nemesis kills (-9), pauses (SIGSTOP)
// and partitions nodes (symmetric and one-way); every operation's invocation and
// completion is recorded and the history is checked for linearizability.
// A second workload writes unique keys once each, to count acknowledged
// writes that were lost.
import type { ApiErrorBody } from '../../src/client.ts';
import type { UserError } from '../../src/errors.ts';
import { Rng } from '../../sim/rng.ts';
import { TestBed } from '../bed/bed.ts';
import { checkHistory, type Op, type Verdict } from './linearizability.ts';

export interface RunOptions {
  seed: number;
  seconds?: number;
  clients?: number;
  keys?: number;
  /** Plant the stale-read fault in every node (reads without ReadIndex). */
  staleReads?: boolean;
  /** 'partition-leader' cuts the current leader off from the others again and again: the classic way to expose stale reads. */
  nemesis?: 'mixed' | 'pause-leader' | 'partition-leader';
  log?: (line: string) => void;
}

export interface RunResult {
  seed: number;
  ops: number;
  unknown: number;
  verdict: Verdict;
  ackedWrites: number;
  lostAckedWrites: number;
  faults: string[];
  history: Op[];
}

type Outcome = { kind: 'ok'; json: any } | { kind: 'failed' } | { kind: 'unknown' };

async function call(c: TestBed, node: number, path: string, body: unknown): Promise<Outcome> {
  try {
    const res = await c.apiClient(node, 2000).raw('POST', path, body);
    if (res.status === 200) return { kind: 'ok', json: res.json };
    // 503 "unavailable" and a refused connection mean the request was not applied; anything else may have been.
    if (res.status === 503 && (res.json as ApiErrorBody | null)?.error?.code === 'unavailable') return { kind: 'failed' };
    return { kind: 'unknown' };
  } catch (err) {
    return (err as UserError).code === 'refused' ? { kind: 'failed' } : { kind: 'unknown' };
  }
}

export async function jepsenRun(opts: RunOptions): Promise<RunResult> {
  const rng = new Rng(opts.seed);
  const seconds = opts.seconds ?? 10;
  const keys = Array.from({ length: opts.keys ?? 3 }, (_, i) => `jepsen/r/${i}`);
  const c = await TestBed.create({ nodes: 3 });
  const history: Op[] = [];
  const faults: string[] = [];
  const acked = new Set<string>();
  let nextId = 0;
  let stopping = false;
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const leaderIndex = async (): Promise<number> => {
    for (let attempt = 0; attempt < 100; attempt++) {
      for (let i = 0; i < 3; i++) {
        if (!c.nodes[i].proc) continue;
        const s = await c.api(i, 'GET', '/v1/cluster/status', undefined, 1000).catch(() => null);
        if (s?.json?.role === 'leader') return i;
      }
      await sleep(200);
    }
    return -1;
  };
  try {
    const extra = opts.staleReads ? ['--unsafe-stale-reads'] : [];
    for (let i = 0; i < 3; i++) await c.start(i, extra);
    for (let attempt = 0; ; attempt++) {
      const s = await c.api(0, 'GET', '/v1/cluster/status').catch(() => null);
      if (s?.json?.members?.filter((m: { role: string }) => m.role === 'voter').length === 3) break;
      if (attempt > 150) throw new Error('the cluster did not reach 3 voters');
      await sleep(200);
    }
    const client = async (id: number) => {
      const r = rng.fork();
      let setCount = 0;
      while (!stopping) {
        const node = r.int(3);
        if (!c.nodes[node].proc) {
          await sleep(20);
          continue;
        }
        if (r.chance(0.1)) {
          // Set workload: a key written once; if acknowledged it must survive.
          const key = `jepsen/set/${id}-${setCount++}`;
          const out = await call(c, node, '/v1/kv/put', { key, value: 'x' });
          if (out.kind === 'ok') acked.add(key);
          continue;
        }
        const key = r.pick(keys);
        const kind = r.pick(['read', 'write', 'cas'] as const);
        const o: Op = { id: nextId++, client: id, key, kind, call: now() };
        let out: Outcome;
        if (kind === 'read') {
          out = await call(c, node, '/v1/kv/range', { key });
          if (out.kind === 'ok') o.output = { value: out.json.kvs[0]?.value ?? null };
        } else if (kind === 'write') {
          o.value = `w${o.id}`;
          out = await call(c, node, '/v1/kv/put', { key, value: o.value });
          if (out.kind === 'ok') o.output = {};
        } else {
          o.expected = r.chance(0.3) ? null : `w${r.int(Math.max(1, o.id))}`;
          o.value = `c${o.id}`;
          const compare = o.expected === null ? { key, target: 'exists', op: '=', value: false } : { key, target: 'value', op: '=', value: o.expected };
          out = await call(c, node, '/v1/kv/txn', { compare: [compare], success: [{ put: { key, value: o.value } }] });
          if (out.kind === 'ok') o.output = { ok: out.json.succeeded };
        }
        if (out.kind === 'failed') continue; // not applied: no effect to explain
        if (out.kind === 'ok') o.ret = now();
        history.push(o); // unknown outcomes stay, with no completion time
      }
    };

    const nemesis = async () => {
      while (!stopping) {
        await sleep(800 + rng.int(1500));
        if (stopping) break;
        if (opts.nemesis === 'partition-leader') {
          const leader = await leaderIndex();
          if (leader < 0) continue;
          const others = [0, 1, 2].filter((i) => i !== leader);
          faults.push(`partition leader ${leader} from ${others.join(',')}`);
          c.partition([leader], others);
          // Long enough for the others to elect a leader and write while the old one still answers reads.
          await sleep(4500 + rng.int(1000));
          c.heal();
          faults.push('heal');
          continue;
        }
        if (opts.nemesis === 'pause-leader') {
          const leader = await leaderIndex();
          if (leader < 0) continue;
          faults.push(`pause leader ${leader}`);
          c.pause(leader);
          await sleep(2500 + rng.int(1000));
          c.resume(leader);
          faults.push(`resume ${leader}`);
          continue;
        }
        const victim = rng.int(3);
        const dice = rng.next();
        if (dice < 0.35) {
          const others = [0, 1, 2].filter((i) => i !== victim);
          const oneWay = rng.chance(0.3);
          faults.push(`partition node ${victim} from ${others.join(',')}${oneWay ? ' one way' : ''}`);
          c.partition([victim], others, { oneWay });
          await sleep(1000 + rng.int(2500));
          c.heal();
          faults.push('heal');
        } else if (dice < 0.7) {
          faults.push(`kill -9 node ${victim}`);
          await c.kill(victim);
          await sleep(500 + rng.int(1500));
          await c.start(victim, opts.staleReads ? ['--unsafe-stale-reads'] : []);
          faults.push(`restart node ${victim}`);
        } else {
          faults.push(`pause node ${victim}`);
          c.pause(victim);
          await sleep(500 + rng.int(2000));
          c.resume(victim);
          faults.push(`resume node ${victim}`);
        }
      }
    };

    const clients = Array.from({ length: opts.clients ?? 6 }, (_, i) => client(i));
    const nem = nemesis();
    await sleep(seconds * 1000);
    stopping = true;
    await nem;
    await Promise.all(clients);

    // Heal, then read every key once more: these reads close the history.
    c.heal();
    for (let i = 0; i < 3; i++) c.resume(i);
    for (let i = 0; i < 3; i++) if (!c.nodes[i].proc) await c.start(i, opts.staleReads ? ['--unsafe-stale-reads'] : []);
    if ((await leaderIndex()) < 0) throw new Error(`no leader after healing\n${c.logs()}`);
    // Some node leads; node 0 may not know it yet, or still catch up after a restart: each read is tried until it
    // succeeds. (Failed and unknown attempts stay out of the history: a read that did not return constrains nothing.)
    const readBack = async (body: unknown, what: string): Promise<{ json: any; call: number; ret: number }> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const called = now();
        const out = await call(c, 0, '/v1/kv/range', body);
        if (out.kind === 'ok') return { json: out.json, call: called, ret: now() };
        if (Date.now() > deadline) throw new Error(`could not read back ${what} on node 0 in 30 s after healing (last: ${out.kind})\n${c.logs(10)}`);
        await sleep(200);
      }
    };
    for (const key of keys) {
      const r = await readBack({ key }, key);
      history.push({ id: nextId++, client: 99, key, kind: 'read', call: r.call, ret: r.ret, output: { value: r.json.kvs[0]?.value ?? null } });
    }
    const set = await readBack({ key: 'jepsen/set/', prefix: true }, 'the set workload');
    const present = new Set((set.json.kvs as { key: string }[]).map((kv) => kv.key));
    const lost = [...acked].filter((k) => !present.has(k)).length;
    const verdict = checkHistory(history, { timeoutMs: 60_000 });
    opts.log?.(`seed ${opts.seed}: ${history.length} ops, ${verdict.result}, ${lost} lost of ${acked.size} acked; ${faults.length} faults`);
    return {
      seed: opts.seed,
      ops: history.length,
      unknown: history.filter((o) => o.ret === undefined).length,
      verdict,
      ackedWrites: acked.size,
      lostAckedWrites: lost,
      faults,
      history,
    };
  } finally {
    stopping = true;
    await c.destroy();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
