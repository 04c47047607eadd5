// The linearizability checker: it must pass what is linearizable and catch what is not.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../sim/rng.ts';
import { checkHistory, type Op } from './jepsen/linearizability.ts';

let nextId = 0;
const op = (o: Omit<Op, 'id' | 'client' | 'key'> & Partial<Pick<Op, 'client' | 'key'>>): Op => ({ id: nextId++, client: 0, key: 'k', ...o });
const w = (value: string, call: number, ret?: number, client = 0): Op => op({ kind: 'write', value, call, ret, client, ...(ret === undefined ? {} : { output: {} }) });
const r = (value: string | null, call: number, ret?: number, client = 0): Op => op({ kind: 'read', call, ret, client, ...(ret === undefined ? {} : { output: { value } }) });
const cas = (expected: string | null, value: string, ok: boolean | undefined, call: number, ret?: number, client = 0): Op =>
  op({ kind: 'cas', expected, value, call, ret, client, ...(ret === undefined ? {} : { output: { ok } }) });

const verdict = (h: Op[]) => checkHistory(h).result;

describe('linearizability checker', () => {
  it('accepts sequential and concurrent histories that some order explains', () => {
    assert.equal(verdict([w('a', 0, 1), r('a', 2, 3), cas('a', 'b', true, 4, 5), r('b', 6, 7)]), 'ok');
    // A read overlapping a write may see either value.
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 6, 1), r('a', 3, 4, 2)]), 'ok');
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 6, 1), r('b', 3, 4, 2)]), 'ok');
    assert.equal(verdict([r(null, 0, 1)]), 'ok');
  });

  it('catches a read of a value never written, a stale read, and two winners of one compare-and-set', () => {
    assert.equal(verdict([w('a', 0, 1), r('z', 2, 3)]), 'violation');
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 3), r('a', 4, 5)]), 'violation', 'stale read after a completed write');
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 3), cas('a', 'c', true, 4, 5, 1)]), 'violation');
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 5), cas('a', 'c', true, 3, 6, 1)]), 'violation', 'concurrent too');
    // A lost update: both read a, both write, and a later read sees the first write only.
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 3), r('a', 4, 5)]), 'violation');
    // A failed cas is a read that saw something else.
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', false, 2, 3)]), 'violation');
  });

  it('lets an operation of unknown outcome take effect at any time after its call, or never', () => {
    assert.equal(verdict([w('a', 0, 1), w('b', 2), r('b', 10, 11)]), 'ok', 'seen later');
    assert.equal(verdict([w('a', 0, 1), w('b', 2), r('a', 10, 11)]), 'ok', 'never seen');
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', undefined, 2), r('b', 10, 11), r('b', 12, 13)]), 'ok');
    assert.equal(verdict([w('a', 5, 6), w('b', 2), r('b', 1, 1.5)]), 'violation', 'but not before its call');
  });

  it('passes thousands of random operations on a correct register and catches a stale one', () => {
    const simulate = (seed: number, stale: boolean): Op[] => {
      const rng = new Rng(seed);
      const keys = ['x', 'y', 'z'];
      const state = new Map<string, string | null>();
      const committed = new Map<string, string | null>(); // last value a completed write left
      const ops: Op[] = [];
      let t = 0;
      for (let i = 0; i < 1500; i++) {
        const key = rng.pick(keys);
        const call = (t += rng.next());
        const at = call + rng.next() * 2; // the instant it takes effect
        const ret = at + rng.next() * 2;
        const kind = rng.pick(['read', 'write', 'cas'] as const);
        const cur = state.get(key) ?? null;
        const o: Op = { id: i, client: i % 8, key, kind, call, ret };
        if (kind === 'read') o.output = { value: stale && rng.chance(0.2) ? (committed.get(key) ?? null) : cur };
        else if (kind === 'write') {
          o.value = `v${i}`;
          committed.set(key, cur);
          state.set(key, o.value);
          o.output = {};
        } else {
          o.expected = rng.chance(0.5) ? cur : `v${rng.int(i + 1)}`;
          o.value = `v${i}`;
          const ok = cur === o.expected;
          if (ok) {
            committed.set(key, cur);
            state.set(key, o.value);
          }
          o.output = { ok };
        }
        if (kind !== 'read' && rng.chance(0.05)) {
          delete o.ret; // a timeout: the client never learns the outcome
          delete o.output;
        }
        ops.push(o);
        t = at; // effects happen in call order, so the generated history is linearizable by construction
      }
      return ops;
    };
    for (let seed = 1; seed <= 20; seed++) assert.equal(checkHistory(simulate(seed, false)).result, 'ok', `seed ${seed}`);
    let caught = 0;
    for (let seed = 1; seed <= 20; seed++) if (checkHistory(simulate(seed, true)).result === 'violation') caught++;
    assert.ok(caught >= 15, `stale reads caught in ${caught} of 20 histories`);
  });

  it('reports unknown, never ok, when the search runs out of time', (t) => {
    // Many concurrent writes of distinct values and reads that pin nothing down: a large search space.
    const h: Op[] = [];
    for (let i = 0; i < 300; i++) h.push(w(`v${i}`, 0, 1000, i));
    h.push(r('nope', 2000, 2001));
    const started = Date.now();
    const v = checkHistory(h, { timeoutMs: 50 });
    t.diagnostic(`gave up after ${Date.now() - started} ms`);
    assert.equal(v.result, 'unknown');
  });
});
