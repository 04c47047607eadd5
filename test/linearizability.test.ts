// The linearizability checker: it must pass what is linearizable and catch what is not.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Rng } from '../sim/rng.ts';
import { checkHistory, describeViolation, loadHistory, saveHistory, type Op, type Verdict } from './jepsen/linearizability.ts';

let nextId = 0;
const op = (o: Omit<Op, 'id' | 'client' | 'key'> & Partial<Pick<Op, 'client' | 'key'>>): Op => ({ id: nextId++, client: 0, key: 'k', ...o });
/** A write; without `ret` its outcome is unknown. */
const w = (value: string | null, call: number, ret?: number, client = 0, key = 'k'): Op =>
  op({ kind: 'write', value, call, ret, client, key, ...(ret === undefined ? {} : { output: {} }) });
const r = (value: string | null, call: number, ret?: number, client = 0, key = 'k'): Op =>
  op({ kind: 'read', call, ret, client, key, ...(ret === undefined ? {} : { output: { value } }) });
const cas = (expected: string | null, value: string, ok: boolean | undefined, call: number, ret?: number, client = 0): Op =>
  op({ kind: 'cas', expected, value, call, ret, client, ...(ret === undefined ? {} : { output: { ok } }) });

const verdict = (h: Op[], initial?: Record<string, string | null>) => checkHistory(h, { initial }).result;

describe('linearizability checker', () => {
  it('accepts sequential histories', () => {
    assert.equal(verdict([]), 'ok');
    assert.equal(verdict([r(null, 0, 1)]), 'ok', 'a key starts absent');
    assert.equal(verdict([w('a', 0, 1), r('a', 2, 3), cas('a', 'b', true, 4, 5), r('b', 6, 7), cas('a', 'c', false, 8, 9), r('b', 10, 11)]), 'ok');
    assert.equal(verdict([w('a', 0, 1), w(null, 2, 3), r(null, 4, 5), cas(null, 'b', true, 6, 7), r('b', 8, 9)]), 'ok', 'writing null deletes');
    assert.equal(verdict([r('a', 0, 1)], { k: 'a' }), 'ok', 'an initial value');
    assert.equal(verdict([r('a', 0, 1)]), 'violation', 'but only when given');
  });

  it('lets a read overlapping a write see either value', () => {
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 6, 1), r('a', 3, 4, 2)]), 'ok');
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 6, 1), r('b', 3, 4, 2)]), 'ok');
    // Once one concurrent read saw the new value, a later read cannot see the old one.
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 10, 1), r('b', 3, 4, 2), r('a', 5, 6, 3)]), 'violation');
    // Operations that only touch in time count as concurrent.
    assert.equal(verdict([w('a', 0, 1), w('b', 2, 5, 1), r('a', 5, 6, 2)]), 'ok');
  });

  it('catches a read of a value never written', () => {
    assert.equal(verdict([w('a', 0, 1), r('z', 2, 3)]), 'violation');
    assert.equal(verdict([w('a', 0, 10), r('z', 2, 3, 1)]), 'violation');
  });

  it('catches a stale read after a write that completed before the read began, and explains it', () => {
    const h = [w('a', 0, 1), w('b', 2, 3), r('a', 4, 5, 1)];
    const v = checkHistory(h);
    assert.equal(v.result, 'violation');
    if (v.result !== 'violation') return;
    assert.equal(v.key, 'k');
    // "b" cannot be written while the read still needs "a", and the read cannot go before the write.
    assert.deepEqual(v.prefix, [h[0]]);
    assert.equal(v.state, 'a');
    assert.equal(v.blockedAt, h[1]);
    assert.deepEqual(v.pending, [h[1]]);
    assert.deepEqual(v.stranded, [h[2]]);
    assert.deepEqual(v.ops, h, 'the explanation: the write of "a", the write of "b" and the read');
    const text = describeViolation(v);
    assert.match(text, /key "k" is not linearizable/);
    assert.match(text, new RegExp(`#${h[1].id} client 0 write "b" \\[2, 3\\] ok: it would overwrite "a", which #${h[2].id} still needs`));
    assert.match(text, new RegExp(`! #${h[2].id} client 1 read \\[4, 5\\] saw "a"`));
    // A read that overlaps nothing it could have seen.
    const h2 = [w('a', 0, 1), r('z', 2, 3, 1)];
    const v2 = checkHistory(h2);
    assert.equal(v2.result, 'violation');
    if (v2.result !== 'violation') return;
    assert.equal(v2.blockedAt, h2[1]);
    assert.match(describeViolation(v2), /saw "z": it saw "z" but the value was "a"/);
  });

  it('catches two compare-and-sets from one expected value that both applied', () => {
    // One after the other.
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 3), cas('a', 'c', true, 4, 5, 1)]), 'violation');
    // Concurrently, from the same state.
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 5), cas('a', 'c', true, 3, 6, 1)]), 'violation');
    // Concurrently, but one of them restores the value the other expects: fine.
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 5), cas('b', 'a', true, 2, 5, 1), cas('a', 'c', true, 3, 6, 2)]), 'ok');
  });

  it('catches lost updates', () => {
    // The update applied, and a later read does not see it.
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', true, 2, 3), r('a', 4, 5)]), 'violation');
    // Read-modify-write from two clients: both read "a", both cas from "a", both applied.
    const h = [w('a', 0, 1), r('a', 2, 3, 1), r('a', 2, 3, 2), cas('a', 'b', true, 4, 6, 1), cas('a', 'c', true, 4, 6, 2), r('c', 7, 8)];
    assert.equal(verdict(h), 'violation');
  });

  it('treats a failed compare-and-set as a read that saw something else', () => {
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', false, 2, 3)]), 'violation');
    assert.equal(verdict([w('a', 0, 1), cas('z', 'b', false, 2, 3), r('a', 4, 5)]), 'ok');
    // Failing is fine while a concurrent write changes the value.
    assert.equal(verdict([w('a', 0, 1), w('c', 2, 6, 1), cas('a', 'b', false, 3, 4), r('c', 7, 8)]), 'ok');
    assert.equal(verdict([w('a', 0, 1), cas(null, 'b', false, 2, 3)]), 'ok');
    assert.equal(verdict([cas(null, 'b', false, 2, 3)]), 'violation', 'the key was absent, as expected');
  });

  it('lets an operation of unknown outcome take effect at any time after its call, or never', () => {
    assert.equal(verdict([w('a', 0, 1), w('b', 2), r('b', 10, 11)]), 'ok', 'seen later');
    assert.equal(verdict([w('a', 0, 1), w('b', 2), r('a', 10, 11), r('a', 12, 13)]), 'ok', 'never seen');
    assert.equal(verdict([w('a', 0, 1), w('b', 2), r('a', 10, 11), r('b', 12, 13)]), 'ok', 'seen late');
    assert.equal(verdict([w('a', 0, 1), cas('a', 'b', undefined, 2), r('b', 10, 11), r('b', 12, 13)]), 'ok', 'a cas that must have applied');
    assert.equal(verdict([w('a', 0, 1), cas('z', 'b', undefined, 2), r('b', 10, 11)]), 'violation', 'but only if it could apply');
    assert.equal(verdict([w('a', 5, 6), w('b', 2), r('b', 1, 1.5)]), 'violation', 'not before its call');
    assert.equal(verdict([w('b', 0), w('c', 1, 2), r('b', 3, 4), w('d', 5, 6), r('b', 7, 8)]), 'violation', 'and at most once');
    // An unknown write explains a failed cas; then the value stays as it left it.
    assert.equal(verdict([w('a', 0, 1), w('x', 2), cas('a', 'b', false, 3, 4), r('x', 5, 6)]), 'ok');
    assert.equal(verdict([w('a', 0, 1), w('x', 2), cas('a', 'b', false, 3, 4), r('a', 5, 6)]), 'violation');
    // Two unknown operations chained: a write, then a cas from its value.
    assert.equal(verdict([w('a', 0, 1), w('x', 2), cas('x', 'y', undefined, 3), r('y', 5, 6)]), 'ok');
    // A read of unknown outcome constrains nothing.
    assert.equal(verdict([w('a', 0, 1), r('zzz', 2), r('a', 3, 4)]), 'ok');
  });

  it('keeps the search reductions sound', () => {
    // Two writes of one value may go first: the one that must return first is
    // tried, so the other can still come later.
    assert.equal(verdict([w('a', 0, 2), w('a', 0, 10, 1), w('b', 3, 4, 2), r('a', 5, 6, 3)]), 'ok');
    // An unknown write is used up once it took effect, even though a later write could produce its value again.
    assert.equal(verdict([w('b', 0), w('c', 1, 2), r('b', 3, 4), w('d', 5, 6), r('b', 7, 8), w('b', 100, 101)]), 'violation');
    // Unknown cas ops with one new value but different expected values are not interchangeable.
    assert.equal(verdict([cas('x', 'z', undefined, 0), cas('y', 'z', undefined, 1, undefined, 1), w('y', 2, 3, 2), r('z', 4, 5, 3)]), 'ok');
    // A configuration that failed with more unknown operations used up says nothing about the same one with fewer.
    assert.equal(
      verdict([
        w(null, 1),
        r(null, 9, 9, 1),
        cas(null, 'a', true, 3, 4, 2),
        w('a', 0, 3, 3),
        op({ kind: 'cas', expected: null, value: null, call: 4, client: 4 }),
      ]),
      'ok',
    );
  });

  it('checks each key on its own and names the one that fails', () => {
    const h = [w('a', 0, 1, 0, 'x'), w('a', 0, 1, 1, 'y'), r('a', 2, 3, 0, 'x'), w('b', 2, 3, 1, 'y'), r('a', 4, 5, 2, 'y'), r('a', 4, 5, 3, 'x')];
    const v = checkHistory(h);
    assert.equal(v.result, 'violation');
    assert.equal(v.result === 'violation' && v.key, 'y');
    assert.equal(checkHistory(h.filter((o) => o.key === 'x')).result, 'ok');
  });

  it('agrees with a brute-force search on thousands of small random histories', () => {
    let ok = 0;
    for (let seed = 1; seed <= 3000; seed++) {
      const rng = new Rng(seed);
      const h = randomSmallHistory(rng);
      const initial = rng.chance(0.3) ? 'a' : null;
      const expected = bruteForce(h, initial) ? 'ok' : 'violation';
      if (expected === 'ok') ok++;
      assert.equal(checkHistory(h, { initial: { k: initial } }).result, expected, `seed ${seed}: ${JSON.stringify(h)}`);
    }
    assert.ok(ok > 800 && ok < 2200, `a mix of verdicts (${ok} of 3000 linearizable)`);
  });

  it('passes random histories of a correct register, with unknown outcomes, for many seeds', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const h = simulate(seed, { ops: 3000, keys: 1 + (seed % 6), clients: 10 + (seed % 21), unknown: [0.02, 0.05, 0.1][seed % 3], dupes: 0.1 });
      const v = checkHistory(h, { timeoutMs: 20_000 });
      assert.equal(v.result, 'ok', `seed ${seed}: ${v.result === 'violation' ? describeViolation(v) : JSON.stringify(v)}`);
    }
  });

  it('catches a register that serves stale reads, for most seeds', () => {
    let caught = 0;
    for (let seed = 1; seed <= 20; seed++) {
      const h = simulate(seed, { ops: 3000, keys: 1 + (seed % 6), clients: 10 + (seed % 21), unknown: 0.03, stale: 0.01 });
      const v = checkHistory(h, { timeoutMs: 20_000 });
      assert.notEqual(v.result, 'ok', `seed ${seed}: a stale read got through`);
      if (v.result === 'violation') {
        caught++;
        assert.ok(v.pending.includes(v.blockedAt));
        assert.ok(v.ops.includes(v.blockedAt));
      }
    }
    assert.ok(caught >= 18, `stale reads caught in ${caught} of 20 histories`);
  });

  it('reports unknown, never ok, when the search runs out of time', (t) => {
    // Concurrent writes of distinct values, each read once: every order of
    // them is explored before the last read, of a value nobody wrote, fails.
    const h: Op[] = [];
    for (let i = 0; i < 300; i++) h.push(w(`v${i}`, 0, 1000, i), r(`v${i}`, 0, 1000, 1000 + i));
    h.push(r('nope', 2000, 2001));
    const started = Date.now();
    const v = checkHistory(h, { timeoutMs: 50 });
    t.diagnostic(`gave up after ${Date.now() - started} ms: ${v.result === 'unknown' ? v.reason : v.result}`);
    assert.equal(v.result, 'unknown');
    assert.match(v.result === 'unknown' ? v.reason : '', /ran out of its 50 ms on key\(s\) k /);
  });

  it('saves a history as JSON lines and loads it back', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lin-'));
    try {
      const h = simulate(7, { ops: 500, keys: 3, clients: 8, unknown: 0.1 });
      assert.ok(h.some((o) => o.ret === undefined));
      const file = path.join(dir, 'history.jsonl');
      saveHistory(file, h);
      assert.equal(fs.readFileSync(file, 'utf8').trim().split('\n').length, h.length);
      const back = loadHistory(file);
      assert.deepEqual(back, h);
      assert.equal(checkHistory(back).result, 'ok');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses malformed operations', () => {
    assert.throws(() => checkHistory([op({ kind: 'read', call: 0, ret: 1 })]), /needs output.value/);
    assert.throws(() => checkHistory([op({ kind: 'cas', expected: 'a', value: 'b', call: 0, ret: 1, output: {} })]), /needs output.ok/);
    assert.throws(() => checkHistory([op({ kind: 'write', value: 'a', call: 2, ret: 1, output: {} })]), /ret must not precede call/);
  });

  it('checks 10k operations on 8 keys from 24 clients', (t) => {
    const h = simulate(42, { ops: 10_000, keys: 8, clients: 24, unknown: 0.03, dupes: 0.05 });
    const unknown = h.filter((o) => o.ret === undefined).length;
    let v: Verdict | undefined;
    const started = performance.now();
    v = checkHistory(h);
    const ms = performance.now() - started;
    t.diagnostic(`${h.length} ops (${unknown} of unknown outcome): ${v.result} in ${ms.toFixed(0)} ms`);
    assert.equal(v.result, 'ok');
    const bad = simulate(42, { ops: 10_000, keys: 8, clients: 24, unknown: 0.03, stale: 0.005 });
    const started2 = performance.now();
    v = checkHistory(bad);
    t.diagnostic(`the same with stale reads: ${v.result} in ${(performance.now() - started2).toFixed(0)} ms`);
    assert.equal(v.result, 'violation');
  });
});

// ---------------------------------------------------------------------------

interface SimOptions {
  ops: number;
  keys: number;
  clients: number;
  /** Share of operations whose outcome the client never learns. */
  unknown: number;
  /** Share of writes that write a value written before. */
  dupes?: number;
  /** Share of reads that return the value from before the latest write that completed before the read began. */
  stale?: number;
}

/**
 * A correct register (or one with stale reads planted): clients run one
 * operation at a time; each takes effect atomically at a random instant
 * between its call and its return. An operation of unknown outcome took effect
 * at some point after its call, possibly long after the client gave up, or
 * never; the client moves on.
 */
function simulate(seed: number, o: SimOptions): Op[] {
  const rng = new Rng(seed);
  const keys = Array.from({ length: o.keys }, (_, i) => `key${i}`);
  const clock = Array.from({ length: o.clients }, () => rng.next());
  const ops: { op: Op; at: number }[] = [];
  for (let id = 0; id < o.ops; id++) {
    let c = 0;
    for (let i = 1; i < o.clients; i++) if (clock[i] < clock[c]) c = i;
    const call = clock[c] + rng.next() * 0.5;
    const kind = rng.pick(['read', 'write', 'cas'] as const);
    const op: Op = { id, client: c, key: rng.pick(keys), kind, call };
    if (kind !== 'read') op.value = o.dupes && id > 0 && rng.chance(o.dupes) ? `v${rng.int(id)}` : `v${id}`;
    let at = call + rng.next() * 2;
    if (rng.chance(o.unknown)) {
      at = rng.chance(0.3) ? Infinity : call + rng.next() * 20;
      clock[c] = call + 5; // the client's timeout
    } else {
      op.ret = at + rng.next() * 2;
      clock[c] = op.ret;
    }
    ops.push({ op, at });
  }
  // Apply in the order the operations took effect.
  const state = new Map<string, string | null>();
  const changes = new Map<string, { ret: number; before: string | null }[]>(); // completed changes, by effect time
  const written: string[] = [];
  for (const { op, at } of [...ops].sort((a, b) => a.at - b.at)) {
    const cur = state.get(op.key) ?? null;
    const change = (value: string) => {
      state.set(op.key, value);
      written.push(value);
      if (!changes.has(op.key)) changes.set(op.key, []);
      changes.get(op.key)!.push({ ret: op.ret ?? Infinity, before: cur });
    };
    if (op.kind === 'read') {
      let value = cur;
      if (o.stale && rng.chance(o.stale)) {
        const done = (changes.get(op.key) ?? []).filter((ch) => ch.ret < op.call);
        if (done.length > 0) value = done[done.length - 1].before;
      }
      if (op.ret !== undefined) op.output = { value };
    } else if (op.kind === 'write') {
      if (at !== Infinity) change(op.value!);
      if (op.ret !== undefined) op.output = {};
    } else {
      op.expected = rng.chance(0.6) ? cur : rng.chance(0.2) || written.length === 0 ? null : rng.pick(written);
      const applied = at !== Infinity && cur === op.expected;
      if (applied) change(op.value!);
      if (op.ret !== undefined) op.output = { ok: applied };
    }
  }
  return ops.map((x) => x.op);
}

/** Up to 7 operations on one key with values from a tiny set, so verdicts are mixed. */
function randomSmallHistory(rng: Rng): Op[] {
  const values = ['a', 'b', 'c', null];
  const n = 2 + rng.int(6);
  const h: Op[] = [];
  for (let id = 0; id < n; id++) {
    const kind = rng.pick(['read', 'write', 'cas'] as const);
    const call = rng.int(10);
    const o: Op = { id, client: id, key: 'k', kind, call };
    if (kind !== 'read') o.value = rng.pick(values);
    if (kind === 'cas') o.expected = rng.pick(values);
    if (rng.chance(0.65)) {
      o.ret = call + rng.int(5);
      o.output = kind === 'read' ? { value: rng.pick(values) } : kind === 'cas' ? { ok: rng.chance(0.5) } : {};
    }
    h.push(o);
  }
  return h;
}

/** Linearizable iff some subset of the unknown-outcome writes and cas ops, with every completed op, has a legal order. */
function bruteForce(h: Op[], initial: string | null): boolean {
  const done = h.filter((o) => o.ret !== undefined);
  const unknown = h.filter((o) => o.ret === undefined && o.kind !== 'read');
  for (let mask = 0; mask < 1 << unknown.length; mask++) {
    const set = [...done, ...unknown.filter((_, i) => mask & (1 << i))];
    const placed = set.map(() => false);
    const search = (n: number, s: string | null): boolean => {
      if (n === set.length) return true;
      for (let i = 0; i < set.length; i++) {
        if (placed[i]) continue;
        const o = set[i];
        // o can go next only if every op that returned before o was called is placed.
        if (set.some((p, j) => !placed[j] && p.ret !== undefined && p.ret < o.call)) continue;
        let next: string | null | undefined;
        if (o.kind === 'read') next = o.output!.value === s ? s : undefined;
        else if (o.kind === 'write') next = o.value!;
        else if (o.ret === undefined || o.output!.ok) next = s === o.expected ? o.value! : undefined;
        else next = s !== o.expected ? s : undefined;
        if (next === undefined) continue;
        placed[i] = true;
        const found = search(n + 1, next);
        placed[i] = false;
        if (found) return true;
      }
      return false;
    };
    if (search(0, initial)) return true;
  }
  return false;
}
