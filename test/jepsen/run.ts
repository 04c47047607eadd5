// A Jepsen-style run against a real 3-node firecampd cluster on loopback:
// clients do reads, writes and compare-and-set on a few keys while a nemesis
// kills (-9) and pauses (SIGSTOP) nodes; every operation's invocation and
// completion is recorded and the history is checked for linearizability.
// A second workload writes unique keys once each, to count acknowledged
// writes that were lost.
import { Rng } from '../../sim/rng.ts';
import { LoopbackCluster } from '../helpers/cluster.ts';
import { checkHistory, type Op, type Verdict } from './linearizability.ts';

export interface RunOptions {
  seed: number;
  seconds?: number;
  clients?: number;
  keys?: number;
  /** Plant the stale-read fault in every node (reads without ReadIndex). */
  staleReads?: boolean;
  /** Only pause the current leader: the surest way to expose stale reads on one machine. */
  nemesis?: 'mixed' | 'pause-leader';
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

async function call(c: LoopbackCluster, node: number, path: string, body: unknown): Promise<Outcome> {
  try {
    const res = await fetch(`http://127.0.0.1:${c.nodes[node]!.port}${path}`, {
      method: 'POST',
      headers: { authorization: 'Bearer test-cluster-token', 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(2000),
    });
    const json = (await res.json().catch(() => null)) as any;
    if (res.ok) return { kind: 'ok', json };
    // 503 "unavailable" and a refused connection mean the request was not applied; anything else may have been.
    if (res.status === 503 && json?.error?.code === 'unavailable') return { kind: 'failed' };
    return { kind: 'unknown' };
  } catch (err) {
    const code = (err as { cause?: { code?: string } }).cause?.code;
    return code === 'ECONNREFUSED' ? { kind: 'failed' } : { kind: 'unknown' };
  }
}

export async function jepsenRun(opts: RunOptions): Promise<RunResult> {
  const rng = new Rng(opts.seed);
  const seconds = opts.seconds ?? 10;
  const keys = Array.from({ length: opts.keys ?? 3 }, (_, i) => `jepsen/r/${i}`);
  const env = opts.staleReads ? { FIRECAMPD_UNSAFE_STALE_READS: 'true' } : {};
  const c = await LoopbackCluster.start(3, env);
  const history: Op[] = [];
  const faults: string[] = [];
  const acked = new Set<string>();
  let nextId = 0;
  let stopping = false;
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  try {
    const client = async (id: number) => {
      const r = rng.fork();
      let setCount = 0;
      while (!stopping) {
        const node = r.int(3);
        if (!c.nodes[node]!.running) continue;
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
          const compare =
            o.expected === null
              ? { key, target: 'exists', op: '=', value: false }
              : { key, target: 'value', op: '=', value: o.expected };
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
        if (opts.nemesis === 'pause-leader') {
          const leader = await c.leaderIndex().catch(() => -1);
          if (leader < 0) continue;
          faults.push(`pause leader ${leader}`);
          c.pause(leader);
          await sleep(2500 + rng.int(1000));
          c.resume(leader);
          faults.push(`resume ${leader}`);
          continue;
        }
        const victim = rng.int(3);
        if (rng.chance(0.5)) {
          faults.push(`kill -9 node ${victim}`);
          await c.kill(victim);
          await sleep(500 + rng.int(1500));
          await c.restart(victim);
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
    for (let i = 0; i < 3; i++) if (!c.nodes[i]!.running) await c.restart(i);
    await c.leaderIndex();
    for (const key of keys) {
      const o: Op = { id: nextId++, client: 99, key, kind: 'read', call: now() };
      const out = await call(c, 0, '/v1/kv/range', { key });
      if (out.kind === 'ok') {
        o.output = { value: out.json.kvs[0]?.value ?? null };
        o.ret = now();
        history.push(o);
      }
    }
    const set = await call(c, 0, '/v1/kv/range', { key: 'jepsen/set/', prefix: true });
    if (set.kind !== 'ok') throw new Error('could not read back the set workload after healing');
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
    await c.stopAll();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
