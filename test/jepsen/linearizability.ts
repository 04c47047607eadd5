// A linearizability checker for histories of a key-value store with
// compare-and-set, written for this project from the published descriptions
// of the algorithms (no code taken from elsewhere):
// - the Wing-Gong search: repeatedly pick an operation that may take effect
//   next (invoked before the earliest return of those not yet placed), and
//   backtrack when an operation returns before it could be placed; iterative,
//   on a doubly linked list of call and return events;
// - Lowe's improvement: a cache of the configurations visited (the set of
//   placed operations as a bitset, and the state), so none is explored twice;
// - P-compositionality: a map is linearizable iff each key is, so every key is
//   checked on its own.
//
// On top of that, reductions that never turn a linearizable history into a
// violation (each keeps at least one linearization if there is one):
// - A pending read, or failed cas, that the current state allows is placed at
//   once: it changes nothing, so a linearization can always be reordered so.
//   The search branches only on writes and cas ops that applied.
// - Leaving a value that an unplaced operation still needs (a read of it, a cas
//   that applied expecting it) while nothing unplaced can write it again is a
//   dead end, cut at once.
// - Known operations that change the state alike (writes of one value) are
//   twins: of those that may go next, only the one that returns first is tried.
// - Values nobody observes (no read returns them, no cas expects them) behave
//   alike and share one state.
//
// Operations whose outcome is unknown (a timeout, a reset connection) return at
// +infinity: they may take effect at any time after their call, or never. Reads
// among them are dropped. The others are placed only right before something
// that needs them (an operation pending then that could not go next without it,
// or another unknown cas): a linearization can always be rearranged so, by
// moving them later or dropping them. Unknown operations that do the same
// thing are interchangeable and the earliest unused is taken; a configuration
// is skipped when one with the same placed known operations and state, and no
// more unknown operations used up, was explored already. The search succeeds
// once every known operation is placed: the unknown rest never took effect.
import fs from 'node:fs';

export type OpKind = 'read' | 'write' | 'cas';

export interface Op {
  id: number;
  client: number;
  key: string;
  kind: OpKind;
  /** write: the value written; cas: the new value. null means absent (a delete). */
  value?: string | null;
  /** cas: the value it expects; null means it expects the key to be absent. */
  expected?: string | null;
  /** Invocation time, any monotonic unit. */
  call: number;
  /** Completion time; undefined when the outcome is unknown: the operation may have taken effect at any time after `call`, or never. */
  ret?: number;
  /** read: the value seen (null for absent); cas: whether it applied. Absent when the outcome is unknown. */
  output?: { value?: string | null; ok?: boolean };
}

export type Violation = {
  result: 'violation';
  key: string;
  /** A short explanation, in call order: the pending and stranded operations, and the operations of the prefix that overlap them or set the value. */
  ops: Op[];
  /** The longest linearizable prefix the search found, in linearization order (unknown-outcome operations in it took effect). */
  prefix: Op[];
  /** The value of the key after `prefix`. */
  state: string | null;
  /** The operation that returned while it could not be placed after `prefix`. */
  blockedAt: Op;
  /** The known operations that were invoked and not placed when `blockedAt` returned (blockedAt among them): none can go next. */
  pending: Op[];
  /** Unplaced operations that need the value `state` (reads of it, cas ops that applied expecting it) when nothing unplaced can write it again: the value cannot be overwritten yet. */
  stranded: Op[];
  /** Every operation of the key. */
  history: Op[];
};

export type Verdict = { result: 'ok'; keys: number; ops: number } | Violation | { result: 'unknown'; reason: string };

export interface CheckOptions {
  /** Time budget for the whole history; when the search runs out on some key the verdict is 'unknown'. Default 60 s. */
  timeoutMs?: number;
  /** Values before the history starts; keys not listed are absent. */
  initial?: Record<string, string | null>;
}

/** Check a history; keys are checked independently, each with a fair share of the time budget and then whatever is left. */
export function checkHistory(history: Op[], opts: CheckOptions = {}): Verdict {
  const budget = opts.timeoutMs ?? 60_000;
  const deadline = Date.now() + budget;
  const byKey = new Map<string, Op[]>();
  for (const op of history) {
    validate(op);
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  const keys = [...byKey.keys()];
  const timedOut: string[] = [];
  const notes = new Map<string, string>();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const share = (deadline - Date.now()) / (keys.length - i);
    const r = checkKey(byKey.get(key)!, opts.initial?.[key] ?? null, Date.now() + share);
    if (r.kind === 'violation') return { result: 'violation', ...r.violation };
    if (r.kind === 'timeout') {
      timedOut.push(key);
      notes.set(key, r.note);
    }
  }
  // Keys that ran out of their share get what the others left.
  for (let i = 0; i < timedOut.length && Date.now() < deadline;) {
    const key = timedOut[i];
    const r = checkKey(byKey.get(key)!, opts.initial?.[key] ?? null, deadline);
    if (r.kind === 'violation') return { result: 'violation', ...r.violation };
    if (r.kind === 'ok') timedOut.splice(i, 1);
    else {
      notes.set(key, r.note);
      i++;
    }
  }
  if (timedOut.length > 0) {
    const why = timedOut.map((k) => notes.get(k)).join(' | ');
    return { result: 'unknown', reason: `the search ran out of its ${budget} ms on key(s) ${timedOut.join(', ')} (${why})` };
  }
  return { result: 'ok', keys: byKey.size, ops: history.length };
}

function validate(op: Op): void {
  const bad = (why: string) => new TypeError(`op ${op.id} (${op.kind} on ${op.key}): ${why}`);
  if (!Number.isFinite(op.call)) throw bad('call time must be a finite number');
  if (op.ret !== undefined && !(op.ret >= op.call)) throw bad('ret must not precede call');
  if (op.kind !== 'read' && op.value === undefined) throw bad('a write or cas needs a value');
  if (op.kind === 'cas' && op.expected === undefined) throw bad('a cas needs an expected value');
  if (op.ret === undefined) return;
  if (op.kind === 'read' && op.output?.value === undefined) throw bad('a completed read needs output.value');
  if (op.kind === 'cas' && typeof op.output?.ok !== 'boolean') throw bad('a completed cas needs output.ok');
}

// ---------------------------------------------------------------------------
// The search on one key.

const FAIL = -1;
const READ = 0;
const WRITE = 1;
const CAS = 2;
const KIND = { read: READ, write: WRITE, cas: CAS } as const;
/** The state id shared by all values no operation observes. */
const UNOBSERVED = 0;

/** A call or return of a known operation, in a doubly linked list in time order. */
class Ev {
  next: Ev | null = null;
  prev: Ev | null = null;
  match: Ev = this;
  constructor(
    readonly idx: number,
    readonly isCall: boolean,
    readonly time: number,
  ) {}
}

/** A 32-bit integer hash (xorshift-multiply rounds). */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/**
 * The configurations visited on one key: an open-addressing table on a 64-bit
 * hash, each entry checked against its stored window of the linearized set, so
 * a hash collision can never merge two configurations. An entry keeps the ids
 * of the used-vectors it was explored with.
 */
class Visited {
  // Slot pairs: (entry + 1, hash A); 0 is empty.
  private slots = new Int32Array(2 << 12);
  private n = 0;
  // Entries, 8 numbers each: hash A, hash B, state, from, lo, window length, pool offset, used-vector id.
  private entries = new Int32Array(8 << 11);
  private moreUsed = new Map<number, number[]>();
  private pool = new Uint32Array(1 << 12);
  private poolLen = 0;

  get size(): number {
    return this.n;
  }

  visit(
    zA: number,
    zB: number,
    words: Uint32Array,
    lo: number,
    hi: number,
    state: number,
    from: number,
    usedId: number,
    atMost: (usedId: number) => boolean,
  ): boolean {
    const len = Math.max(0, hi - lo);
    const a = (zA ^ Math.imul(state + 1, 0x9e3779b1) ^ Math.imul(from + 2, 0x85ebca6b) ^ lo) | 0;
    const b = (zB ^ Math.imul(state + 1, 0xc2b2ae35) ^ Math.imul(from + 2, 0x27d4eb2f) ^ Math.imul(lo, 0x165667b1)) | 0;
    const slots = this.slots;
    const mask = (slots.length >>> 1) - 1;
    const en = this.entries;
    let i = a & mask;
    for (; ; i = (i + 1) & mask) {
      const s = slots[2 * i];
      if (s === 0) break;
      if (slots[2 * i + 1] !== a) continue;
      const e = 8 * (s - 1);
      if (en[e + 1] !== b || en[e + 2] !== state || en[e + 3] !== from || en[e + 4] !== lo || en[e + 5] !== len) continue;
      const off = en[e + 6];
      let same = true;
      for (let w = 0; w < len && same; w++) same = this.pool[off + w] === words[lo + w];
      if (!same) continue;
      if (atMost(en[e + 7])) return false;
      const more = this.moreUsed.get(s);
      if (more === undefined) this.moreUsed.set(s, [usedId]);
      else {
        for (const u of more) if (atMost(u)) return false;
        more.push(usedId);
      }
      return true;
    }
    if (8 * (this.n + 1) > en.length) {
      this.entries = new Int32Array(2 * en.length);
      this.entries.set(en);
    }
    if (this.poolLen + len > this.pool.length) {
      const pool = new Uint32Array(Math.max(2 * this.pool.length, this.poolLen + len));
      pool.set(this.pool);
      this.pool = pool;
    }
    const e = 8 * this.n++;
    const x = this.entries;
    x[e] = a;
    x[e + 1] = b;
    x[e + 2] = state;
    x[e + 3] = from;
    x[e + 4] = lo;
    x[e + 5] = len;
    x[e + 6] = this.poolLen;
    x[e + 7] = usedId;
    for (let w = 0; w < len; w++) this.pool[this.poolLen++] = words[lo + w]!;
    slots[2 * i] = this.n;
    slots[2 * i + 1] = a;
    if (4 * this.n > slots.length) this.rehash();
    return true;
  }

  private rehash(): void {
    const slots = new Int32Array(2 * this.slots.length);
    const mask = (slots.length >>> 1) - 1;
    for (let n = 0; n < this.n; n++) {
      const a = this.entries[8 * n];
      let i = a & mask;
      while (slots[2 * i] !== 0) i = (i + 1) & mask;
      slots[2 * i] = n + 1;
      slots[2 * i + 1] = a;
    }
    this.slots = slots;
  }
}

type KeyResult = { kind: 'ok' } | { kind: 'timeout'; note: string } | { kind: 'violation'; violation: Omit<Violation, 'result'> };

function checkKey(ops: Op[], initial: string | null, deadline: number): KeyResult {
  // Known operations, by call time: their index is their bit in the linearized set.
  const known = ops.filter((o) => o.ret !== undefined).sort((a, b) => a.call - b.call || a.ret! - b.ret!);
  // Unknown outcomes: reads change nothing and constrain nothing, so they go.
  const unknown = ops.filter((o) => o.ret === undefined && o.kind !== 'read').sort((a, b) => a.call - b.call);
  if (known.length === 0) return { kind: 'ok' };

  // Values as small integers; the ones nobody observes share UNOBSERVED.
  const observed = new Set<string | null>();
  for (const o of known) {
    if (o.kind === 'read') observed.add(o.output!.value!);
    else if (o.kind === 'cas') observed.add(o.expected!);
  }
  for (const o of unknown) if (o.kind === 'cas') observed.add(o.expected!);
  const ids = new Map<string | null, number>();
  const id = (v: string | null): number => {
    if (!observed.has(v)) return UNOBSERVED;
    let n = ids.get(v);
    if (n === undefined) ids.set(v, (n = ids.size + 1));
    return n;
  };

  const nk = known.length;
  const kKind = new Uint8Array(nk);
  const kA = new Int32Array(nk); // read: value seen; write, cas: new value
  const kB = new Int32Array(nk); // cas: expected
  const kOk = new Uint8Array(nk); // cas: applied
  const readLike = new Uint8Array(nk); // a read or a failed cas: it changes nothing
  known.forEach((o, i) => {
    kKind[i] = KIND[o.kind];
    kA[i] = id(o.kind === 'read' ? o.output!.value! : o.value!);
    if (o.kind === 'cas') {
      kB[i] = id(o.expected!);
      kOk[i] = o.output!.ok ? 1 : 0;
    }
    readLike[i] = o.kind === 'read' || (o.kind === 'cas' && !o.output!.ok) ? 1 : 0;
  });
  // Twins: known operations that change the state alike (writes of one value,
  // or cas ops that applied with the same expected and new values). Among twins
  // that may go next, only the one that must return first is tried: any
  // linearization placing another twin here can swap the two.
  const twinOf = new Int32Array(nk).fill(-1);
  const kRet = new Float64Array(nk);
  let twinGroups = 0;
  {
    const names = new Map<string, number[]>();
    for (let i = 0; i < nk; i++) {
      kRet[i] = known[i].ret!;
      if (readLike[i]) continue;
      const name = `${kKind[i]}:${kA[i]}:${kB[i]}`;
      const list = names.get(name);
      if (list) list.push(i);
      else names.set(name, [i]);
    }
    let groups = 0;
    for (const list of names.values()) {
      if (list.length < 2) continue;
      for (const i of list) twinOf[i] = groups;
      groups++;
    }
    twinGroups = groups;
  }
  const twinBest = new Int32Array(twinGroups);
  const twinStamp = new Int32Array(twinGroups);
  let stamp = 0;
  /** For each twin group, the member among the current candidates that must return first. */
  const pickTwins = () => {
    if (twinGroups === 0) return;
    stamp++;
    for (let e = head.next; e !== null && e.isCall; e = e.next) {
      const g = twinOf[e.idx];
      if (g < 0) continue;
      if (twinStamp[g] !== stamp) {
        twinStamp[g] = stamp;
        twinBest[g] = e.idx;
      } else if (kRet[e.idx] < kRet[twinBest[g]]) twinBest[g] = e.idx;
    }
  };
  const stepKnown = (s: number, i: number): number => {
    switch (kKind[i]) {
      case READ:
        return kA[i] === s ? s : FAIL;
      case WRITE:
        return kA[i];
      default:
        if (kOk[i]) return s === kB[i] ? kA[i] : FAIL;
        return s !== kB[i] ? s : FAIL; // a failed cas is a read that saw something else
    }
  };

  // Unknown operations, grouped into classes of interchangeable ones. Class
  // members are used strictly in call order, so `used[c]` members of class c
  // (the first ones) have taken effect.
  const nu = unknown.length;
  const uKind = new Uint8Array(nu);
  const uA = new Int32Array(nu);
  const uB = new Int32Array(nu);
  const uCall = new Float64Array(nu);
  const uClass = new Int32Array(nu);
  const uPos = new Int32Array(nu);
  const classes = new Map<string, number>();
  const classSize: number[] = [];
  unknown.forEach((o, j) => {
    uKind[j] = KIND[o.kind];
    uA[j] = id(o.value!);
    uB[j] = o.kind === 'cas' ? id(o.expected!) : 0;
    uCall[j] = o.call;
    const name = `${uKind[j]}:${uA[j]}:${uB[j]}`;
    let c = classes.get(name);
    if (c === undefined) {
      classes.set(name, (c = classes.size));
      classSize.push(0);
    }
    uClass[j] = c;
    uPos[j] = classSize[c]++;
  });
  const nc = classes.size;

  // For each value: how many unplaced operations need it to be the state
  // (reads of it, cas ops that applied expecting it), and how many unplaced
  // ones could still produce it. Leaving a value that is still needed and can
  // never come back is a dead end, found right away instead of when the reader
  // returns.
  const needs = new Int32Array(ids.size + 1);
  const producers = new Int32Array(ids.size + 1);
  // Also: unplaced failed cas ops by expected value (they need the state to be
  // anything else), and unused unknown cas ops by expected value.
  const failNeeds = new Int32Array(ids.size + 1);
  const casExpects = new Int32Array(ids.size + 1);
  const count = (i: number, d: number) => {
    if (kKind[i] === READ) needs[kA[i]] += d;
    else if (kKind[i] === WRITE) producers[kA[i]] += d;
    else if (kOk[i]) {
      producers[kA[i]] += d;
      needs[kB[i]] += d;
    } else failNeeds[kB[i]] += d;
  };
  for (let i = 0; i < nk; i++) count(i, 1);
  const countUnknown = (j: number, d: number) => {
    producers[uA[j]] += d;
    if (uKind[j] === CAS) casExpects[uB[j]] += d;
  };
  for (let j = 0; j < nu; j++) countUnknown(j, 1);
  // The values that known operations that may go next need (reads, cas ops
  // that applied), and the expected values of those that failed: marked with
  // a stamp when the unknown phase of a node starts.
  const wantStamp = new Int32Array(ids.size + 1);
  const failStamp = new Int32Array(ids.size + 1);
  let wantNow = 0;
  /** Whether moving the state away from s strands an operation that needs s. */
  const strands = (s: number): boolean => needs[s] > 0 && producers[s] === 0;
  /** Apply unknown op j, or FAIL when it would change nothing (then it may as well never happen). */
  const stepUnknown = (s: number, j: number): number => {
    if (uA[j] === s) return FAIL;
    if (uKind[j] === WRITE) return uA[j];
    return s === uB[j] ? uA[j] : FAIL;
  };
  const used = new Int32Array(nc);
  // Each distinct `used` vector gets an id, so a configuration stores one
  // number. The vector is mostly zeros: it is kept as a hash updated on every
  // change, and stored as (class, count) pairs.
  let usedHashA = 0;
  let usedHashB = 0;
  let usedNonZero = 0;
  const toggle = (c: number, k: number) => {
    usedHashA ^= mix(c * 0x10001 + k);
    usedHashB ^= mix((c + 0x5bd1e995) ^ Math.imul(k, 0x9e3779b1));
  };
  const incUsed = (c: number) => {
    if (used[c]++ === 0) usedNonZero++;
    toggle(c, used[c]);
  };
  const decUsed = (c: number) => {
    toggle(c, used[c]);
    if (--used[c] === 0) usedNonZero--;
  };
  const usedIds = new Map<number, number | number[]>();
  const usedVecs: Int32Array[] = []; // (class, count) pairs
  const sameAsUsed = (n: number): boolean => {
    const v = usedVecs[n];
    if (v.length !== 2 * usedNonZero) return false;
    for (let p = 0; p < v.length; p += 2) if (used[v[p]] !== v[p + 1]) return false;
    return true;
  };
  const internUsed = (): number => {
    const h = (usedHashA & 0x1fffff) * 0x100000000 + usedHashB;
    const seen = usedIds.get(h);
    if (typeof seen === 'number' && sameAsUsed(seen)) return seen;
    if (Array.isArray(seen)) for (const n of seen) if (sameAsUsed(n)) return n;
    const v = new Int32Array(2 * usedNonZero);
    for (let c = 0, p = 0; p < v.length; c++) {
      if (used[c] === 0) continue;
      v[p++] = c;
      v[p++] = used[c]!;
    }
    const n = usedVecs.length;
    usedVecs.push(v);
    usedIds.set(h, seen === undefined ? n : Array.isArray(seen) ? [...seen, n] : [seen, n]);
    return n;
  };
  /** Whether used-vector n is componentwise <= the current one: a configuration with n had every option this one has. */
  const atMostUsed = (n: number): boolean => {
    if (n === usedId) return true;
    const v = usedVecs[n];
    for (let p = 0; p < v.length; p += 2) if (v[p + 1] > used[v[p]]) return false;
    return true;
  };
  let usedId = internUsed();

  // The events, calls before returns at equal times (operations that touch overlap).
  const events: Ev[] = [];
  for (let i = 0; i < nk; i++) {
    const c = new Ev(i, true, known[i].call);
    const r = new Ev(i, false, known[i].ret!);
    c.match = r;
    r.match = c;
    events.push(c, r);
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.idx - b.idx : a.isCall ? -1 : 1));
  const head = new Ev(-1, false, -Infinity);
  let tail = head;
  for (const e of events) {
    tail.next = e;
    e.prev = tail;
    tail = e;
  }
  const lift = (call: Ev) => {
    const ret = call.match;
    call.prev!.next = call.next;
    call.next!.prev = call.prev; // a call is always followed by at least its return
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Ev) => {
    const ret = call.match;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    call.next!.prev = call;
  };

  // The linearized set of known operations. Every operation invoked long ago is
  // in it, so a configuration is keyed by a window: the first word that is not
  // full, up to the last word that is not empty.
  const nw = (nk + 31) >>> 5;
  const words = new Uint32Array(nw);
  let lo = 0;
  let hi = 0;
  // A 64-bit hash of the set, updated with each bit.
  let zA = 0;
  let zB = 0;
  const setBit = (i: number) => {
    count(i, -1);
    zA ^= mix(2 * i + 1);
    zB ^= mix(~(2 * i));
    const w = i >>> 5;
    words[w] |= 1 << (i & 31);
    if (w >= hi) hi = w + 1;
    while (lo < nw && words[lo] === 0xffffffff) lo++;
  };
  const clearBit = (i: number) => {
    count(i, 1);
    zA ^= mix(2 * i + 1);
    zB ^= mix(~(2 * i));
    const w = i >>> 5;
    words[w] &= ~(1 << (i & 31));
    if (w < lo) lo = w;
    while (hi > 0 && words[hi - 1] === 0) hi--;
  };
  // A configuration is (linearized known set, state, restriction) plus the
  // used-vector of unknown operations. The restriction is the state before an
  // unknown operation just placed (only what it enables may follow), or -1.
  const cache = new Visited();
  /** Record the configuration; false if it (or one with every option it has) was explored before. */
  const visit = (state: number, from: number): boolean => cache.visit(zA, zB, words, lo, hi, state, from, usedId, atMostUsed);

  // The search stack: for each placed operation, the known call event or the
  // unknown index, and the node's state, restriction and used-vector before it.
  // Forced entries are reads (and failed cas) placed by `absorb` along with the
  // choice below them, and undone with it.
  const stKnown: (Ev | null)[] = [];
  const stUnknown: number[] = [];
  const stState: number[] = [];
  const stFrom: number[] = [];
  const stUsed: number[] = [];
  const stBlock: Ev[] = [];
  const stForced: boolean[] = [];
  const push = (e: Ev | null, j: number, s: number, f: number, u: number, b: Ev, forced: boolean) => {
    stKnown.push(e);
    stUnknown.push(j);
    stState.push(s);
    stFrom.push(f);
    stUsed.push(u);
    stBlock.push(b);
    stForced.push(forced);
  };
  const pop = () => {
    stUnknown.pop();
    stFrom.pop();
    stUsed.pop();
    stBlock.pop();
    stForced.pop();
    stState.pop();
    return stKnown.pop();
  };

  let state = id(initial);
  let from = -1; // this node's restriction
  let placed = 0; // known operations linearized
  let cursor: Ev; // next event to try (known phase)
  let inKnown = true;
  let block: Ev = head; // the earliest pending return (unknown phase)
  let uj = 0; // next unknown to try (unknown phase)
  let steps = 0;
  // The deepest dead end: the stack then, the op whose return blocked it, and the ops pending then.
  let best: { known: (Ev | null)[]; unknown: number[]; blockedAt: number; pending: number[] } | null = null;
  let bestPlaced = -1;

  /**
   * Place every pending read (or failed cas) that the current state allows.
   * That is never a wrong choice: it changes nothing, and any linearization
   * could be reordered to place it here. Returns how many it placed.
   */
  const absorb = (): number => {
    let n = 0;
    for (let e: Ev | null = head.next; e !== null && e.isCall;) {
      if (readLike[e.idx] && stepKnown(state, e.idx) !== FAIL) {
        setBit(e.idx);
        lift(e);
        placed++;
        n++;
        push(e, -1, state, from, usedId, head, true);
        e = e.prev!.next;
      } else e = e.next;
    }
    return n;
  };
  const undoForced = () => {
    while (stForced.length > 0 && stForced[stForced.length - 1]) {
      const e = pop()!;
      clearBit(e.idx);
      unlift(e);
      placed--;
    }
  };

  const markWanted = () => {
    wantNow++;
    for (let e: Ev | null = head.next; e !== null; e = e.next) {
      const i = e.idx;
      if (kKind[i] === READ) wantStamp[kA[i]] = wantNow;
      else if (kKind[i] === CAS) {
        if (kOk[i]) wantStamp[kB[i]] = wantNow;
        else failStamp[kB[i]] = wantNow;
      }
      if (e === block) break;
    }
  };

  absorb();
  if (head.next === null) return { kind: 'ok' };
  visit(state, from);
  cursor = head.next;
  pickTwins();

  for (;;) {
    if ((++steps & 0x3ff) === 0 && Date.now() > deadline) {
      const stuck = best
        ? `; the longest linearizable prefix found places ${bestPlaced} of ${nk} completed ops, stuck when #${known[best.blockedAt].id} returns`
        : '';
      return { kind: 'timeout', note: `${ops[0].key}: ${steps} steps, ${cache.size} configurations${stuck}` };
    }
    if (inKnown) {
      const e = cursor;
      if (!e.isCall) {
        // e returns before it was placed: nothing after it may go next.
        block = e;
        uj = 0;
        inKnown = false;
        markWanted();
        continue;
      }
      cursor = e.next!;
      const i = e.idx;
      if (readLike[i]) continue; // absorbed already if the state allowed it
      if (twinOf[i] >= 0 && twinBest[twinOf[i]] !== i) continue;
      if (from >= 0 && stepKnown(from, i) !== FAIL) continue; // did not need the unknown op just placed
      const next = stepKnown(state, i);
      if (next === FAIL) continue;
      const s = state;
      const f = from;
      setBit(i);
      lift(e);
      placed++;
      push(e, -1, s, f, usedId, head, false);
      state = next;
      from = -1;
      if (next !== s && strands(s)) {
        pop();
        clearBit(i);
        unlift(e);
        placed--;
        state = s;
        from = f;
        continue;
      }
      absorb();
      if (head.next === null) return { kind: 'ok' }; // every known operation placed; the unknown rest never happened
      if (!visit(state, -1)) {
        undoForced();
        pop();
        clearBit(i);
        unlift(e);
        placed--;
        state = s;
        from = f;
        continue;
      }
      cursor = head.next;
      pickTwins();
      continue;
    }
    // Unknown phase: an unknown operation invoked before `block` returned.
    let moved = false;
    for (; uj < nu && uCall[uj] <= block.time; uj++) {
      const c = uClass[uj];
      if (uPos[uj] !== used[c]) continue; // used already, or an earlier twin is still unused
      if (from >= 0 && uKind[uj] === WRITE) continue; // it would overwrite the unknown op just placed
      const next = stepUnknown(state, uj);
      if (next === FAIL) continue;
      // Skip it if nothing could go next thanks to it: no read or cas that may
      // go next needs the new value, no failed cas needs the state to change,
      // and no unknown cas expects the new value.
      if (wantStamp[next] !== wantNow && failStamp[state] !== wantNow && casExpects[next] === 0) continue;
      const s = state;
      const f = from;
      const prevUsed = usedId;
      incUsed(c);
      countUnknown(uj, -1);
      if (strands(s)) {
        decUsed(c);
        countUnknown(uj, 1);
        continue;
      }
      usedId = internUsed();
      push(null, uj, s, f, prevUsed, block, false);
      state = next;
      // Unless it let some read through, only what it enables may follow.
      from = absorb() > 0 ? -1 : s;
      if (head.next === null) return { kind: 'ok' };
      if (!visit(state, from)) {
        undoForced();
        pop();
        decUsed(c);
        countUnknown(uj, 1);
        usedId = prevUsed;
        state = s;
        from = f;
        continue;
      }
      cursor = head.next;
      pickTwins();
      inKnown = true;
      moved = true;
      break;
    }
    if (moved) continue;

    // Dead end. Remember the deepest one for the explanation.
    if (from < 0 && placed > bestPlaced) {
      bestPlaced = placed;
      const pending: number[] = [];
      for (let e: Ev | null = head.next; e !== null && e !== block; e = e.next) if (e.isCall) pending.push(e.idx);
      best = { known: stKnown.slice(), unknown: stUnknown.slice(), blockedAt: block.idx, pending };
    }
    undoForced();
    if (stKnown.length === 0) break;
    state = stState[stState.length - 1]!;
    from = stFrom[stFrom.length - 1]!;
    usedId = stUsed[stUsed.length - 1]!;
    const b = stBlock[stBlock.length - 1];
    const j = stUnknown[stUnknown.length - 1];
    const e = pop();
    if (e) {
      clearBit(e.idx);
      unlift(e);
      placed--;
      cursor = e.next!;
      pickTwins();
      inKnown = true;
    } else {
      decUsed(uClass[j]);
      countUnknown(j, 1);
      block = b;
      uj = j + 1;
      inKnown = false;
      markWanted();
    }
  }

  const prefix = best!.known.map((e, n) => (e ? known[e.idx] : unknown[best!.unknown[n]]));
  const blockedAt = known[best!.blockedAt];
  const pending = best!.pending.map((i) => known[i]);
  let value = initial;
  let setter: Op | undefined;
  for (const o of prefix) {
    if (o.kind === 'read' || (o.kind === 'cas' && o.output?.ok === false)) continue;
    value = o.value!;
    setter = o;
  }
  const inPrefix = new Set(prefix);
  const left = ops.filter((o) => !inPrefix.has(o));
  const writesIt = (o: Op) => (o.kind === 'write' || (o.kind === 'cas' && o.output?.ok !== false)) && o.value === value;
  const needsIt = (o: Op) =>
    o.ret !== undefined && ((o.kind === 'read' && o.output?.value === value) || (o.kind === 'cas' && o.output?.ok === true && o.expected === value));
  const stranded = left.some(writesIt) ? [] : left.filter(needsIt);
  const earliest = pending.reduce((m, o) => Math.min(m, o.call), Infinity);
  const explain = new Set<Op>([...pending, ...stranded]);
  for (const o of prefix) if (o === setter || (o.ret ?? Infinity) >= earliest) explain.add(o);
  return {
    kind: 'violation',
    violation: { key: ops[0].key, ops: [...explain].sort((a, b) => a.call - b.call), prefix, state: value, blockedAt, pending, stranded, history: ops },
  };
}

// ---------------------------------------------------------------------------
// Explanations and files.

const show = (v: string | null | undefined) => (v === null ? 'absent' : JSON.stringify(v));

/** One line for an operation: id, client, what it did, [call, ret] and the outcome. */
export function formatOp(o: Op): string {
  const what = o.kind === 'read' ? 'read' : o.kind === 'write' ? `write ${show(o.value)}` : `cas ${show(o.expected)} -> ${show(o.value)}`;
  const outcome =
    o.ret === undefined
      ? 'outcome unknown'
      : o.kind === 'read'
        ? `saw ${show(o.output?.value)}`
        : o.kind === 'cas'
          ? o.output?.ok
            ? 'applied'
            : 'did not apply'
          : 'ok';
  const t = (x: number | undefined) => (x === undefined ? '?' : Number.isInteger(x) ? String(x) : x.toFixed(3));
  return `#${o.id} client ${o.client} ${what} [${t(o.call)}, ${t(o.ret)}] ${outcome}`;
}

/** A short human-readable account of a violation. */
export function describeViolation(v: Violation, maxLines = 20): string {
  const why = (o: Op): string => {
    if (o.kind === 'read' && o.output?.value !== v.state) return `it saw ${show(o.output?.value)} but the value was ${show(v.state)}`;
    if (o.kind === 'cas' && o.output?.ok && o.expected !== v.state) return `it applied expecting ${show(o.expected)} but the value was ${show(v.state)}`;
    if (o.kind === 'cas' && o.output?.ok === false && o.expected === v.state) return `it did not apply although the value was ${show(v.state)} as expected`;
    if (v.stranded.length > 0 && (o.kind === 'write' || o.kind === 'cas') && o.value !== v.state) {
      const who =
        v.stranded
          .slice(0, 3)
          .map((s) => `#${s.id}`)
          .join(', ') + (v.stranded.length > 3 ? ', ...' : '');
      return `it would overwrite ${show(v.state)}, which ${who} still need${v.stranded.length === 1 ? 's' : ''}, and nothing left writes ${show(v.state)}`;
    }
    return 'it could go next, but then no order of the rest fits';
  };
  const unknown = v.history.filter((o) => o.ret === undefined).length;
  const lines = [
    `key ${JSON.stringify(v.key)} is not linearizable (${v.history.length} operations, ${unknown} of unknown outcome).`,
    `The longest linearizable prefix found has ${v.prefix.length} operations and leaves the value ${show(v.state)}.`,
    `Then ${formatOp(v.blockedAt)} returned, but none of the operations pending then can go next:`,
  ];
  for (const o of v.pending.slice(0, maxLines)) lines.push(`  ${formatOp(o)}: ${why(o)}`);
  if (v.pending.length > maxLines) lines.push(`  ... and ${v.pending.length - maxLines} more`);
  if (v.stranded.length > 0) {
    lines.push(`Still needing ${show(v.state)}, which nothing left writes:`);
    for (const o of v.stranded.slice(0, maxLines)) lines.push(`  ${formatOp(o)}`);
    if (v.stranded.length > maxLines) lines.push(`  ... and ${v.stranded.length - maxLines} more`);
  }
  lines.push('Operations around it, in call order (* pending, ! still needing the value):');
  const around = v.ops.length > maxLines ? v.ops.slice(-maxLines) : v.ops;
  if (around.length < v.ops.length) lines.push(`  ... ${v.ops.length - around.length} earlier`);
  for (const o of around) lines.push(`  ${v.pending.includes(o) ? '*' : v.stranded.includes(o) ? '!' : ' '} ${formatOp(o)}`);
  return lines.join('\n');
}

/** Save a history as JSON lines, one operation a line (an unknown outcome has no ret and no output). */
export function saveHistory(file: string, ops: Op[]): void {
  fs.writeFileSync(file, ops.map((o) => JSON.stringify(o)).join('\n') + (ops.length > 0 ? '\n' : ''));
}

/** Load a history saved by saveHistory. */
export function loadHistory(file: string): Op[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, n) => {
      const o = JSON.parse(l) as Op & { ret?: number | null };
      if (o.ret === null) delete o.ret;
      if (typeof o.id !== 'number' || typeof o.key !== 'string' || !['read', 'write', 'cas'].includes(o.kind)) {
        throw new Error(`${file}:${n + 1}: not an operation`);
      }
      return o;
    });
}
