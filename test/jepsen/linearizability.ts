// A linearizability checker for histories of a key-value store with
// compare-and-set: the Wing-Gong search with Lowe's improvements (a cache of
// visited (linearized set, state) pairs) and P-compositionality (each key is
// checked on its own). Ours, written from the papers' descriptions.
import fs from 'node:fs';

export type OpKind = 'read' | 'write' | 'cas';

export interface Op {
  id: number;
  client: number;
  key: string;
  kind: OpKind;
  /** write: the value written; cas: the new value. */
  value?: string | null;
  /** cas: the value it expects. */
  expected?: string | null;
  /** Invocation time. */
  call: number;
  /** Completion time; undefined when the outcome is unknown (timeout, reset): it may have taken effect at any time after `call`, or never. */
  ret?: number;
  /** read: the value seen (null for absent); cas: whether it applied. Absent when the outcome is unknown. */
  output?: { value?: string | null; ok?: boolean };
}

export type Verdict =
  | { result: 'ok'; keys: number; ops: number }
  | { result: 'violation'; key: string; ops: Op[]; blockedAt: Op }
  | { result: 'unknown'; reason: string };

type State = string | null;

/** Apply `op` to `state` if its recorded output allows it here; undefined if it cannot be linearized here. */
function step(state: State, op: Op): State | undefined {
  switch (op.kind) {
    case 'read':
      return op.output?.value === state ? state : undefined;
    case 'write':
      return op.value ?? null;
    case 'cas': {
      const applies = state === (op.expected ?? null);
      if (op.ret === undefined) return applies ? (op.value ?? null) : state; // unknown outcome: whatever the state decides
      if (op.output?.ok === true) return applies ? (op.value ?? null) : undefined;
      return applies ? undefined : state;
    }
  }
}

interface Event {
  op: Op;
  bit: number;
  isCall: boolean;
  time: number;
  match: Event | null; // call <-> return
  prev: Event | null;
  next: Event | null;
}

/** Check one key's operations. */
function checkKey(ops: Op[], initial: State, deadline: number): { ok: true } | { ok: false; blockedAt: Op } | { ok: 'timeout' } {
  // Reads whose outcome is unknown change nothing and constrain nothing.
  const live = ops.filter((o) => !(o.kind === 'read' && o.ret === undefined));
  const events: Event[] = [];
  live.forEach((op, bit) => {
    const call: Event = { op, bit, isCall: true, time: op.call, match: null, prev: null, next: null };
    const ret: Event = { op, bit, isCall: false, time: op.ret ?? Infinity, match: call, prev: null, next: null };
    call.match = ret;
    events.push(call, ret);
  });
  // At equal times calls come first: operations that touch in time count as concurrent.
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? 0 : a.isCall ? -1 : 1));
  const head: Event = { op: null as unknown as Op, bit: -1, isCall: false, time: -Infinity, match: null, prev: null, next: null };
  let last = head;
  for (const e of events) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  const lift = (call: Event) => {
    for (const e of [call, call.match!]) {
      e.prev!.next = e.next;
      if (e.next) e.next.prev = e.prev;
    }
  };
  const unlift = (call: Event) => {
    for (const e of [call.match!, call]) {
      e.prev!.next = e;
      if (e.next) e.next.prev = e;
    }
  };

  const words = new Uint32Array(Math.ceil(live.length / 32));
  const seen = new Set<string>();
  const stack: { call: Event; state: State }[] = [];
  let state = initial;
  let entry = head.next;
  let deepest: Op | undefined;
  let steps = 0;
  while (head.next !== null) {
    if ((++steps & 0xfff) === 0 && Date.now() > deadline) return { ok: 'timeout' };
    if (entry!.isCall) {
      const next = step(state, entry!.op);
      if (next !== undefined) {
        words[entry!.bit >>> 5]! |= 1 << (entry!.bit & 31);
        const key = `${words.join(',')}|${next === null ? '\u0000' : next}`;
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ call: entry!, state });
          state = next;
          lift(entry!);
          entry = head.next;
          continue;
        }
        words[entry!.bit >>> 5]! &= ~(1 << (entry!.bit & 31));
      }
      entry = entry!.next;
    } else {
      // An operation completed before we could place it: undo the last choice.
      if (stack.length === 0) return { ok: false, blockedAt: deepest ?? entry!.op };
      if (!deepest) deepest = entry!.op;
      const top = stack.pop()!;
      state = top.state;
      words[top.call.bit >>> 5]! &= ~(1 << (top.call.bit & 31));
      unlift(top.call);
      entry = top.call.next;
    }
  }
  return { ok: true };
}

export function checkHistory(history: Op[], opts: { timeoutMs?: number; initial?: Record<string, State> } = {}): Verdict {
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const byKey = new Map<string, Op[]>();
  for (const op of history) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  const timedOut: string[] = [];
  for (const [key, ops] of byKey) {
    const r = checkKey(ops, opts.initial?.[key] ?? null, deadline);
    if (r.ok === 'timeout') timedOut.push(key);
    else if (!r.ok) return { result: 'violation', key, ops, blockedAt: r.blockedAt };
  }
  if (timedOut.length > 0) return { result: 'unknown', reason: `search ran out of time on key(s) ${timedOut.join(', ')}` };
  return { result: 'ok', keys: byKey.size, ops: history.length };
}

export function describeViolation(v: Extract<Verdict, { result: 'violation' }>): string {
  const show = (o: Op) =>
    `#${o.id} c${o.client} ${o.kind}${o.kind === 'cas' ? `(${o.expected}->${o.value})` : o.kind === 'write' ? `(${o.value})` : ''} ` +
    `[${o.call.toFixed(1)}, ${o.ret === undefined ? '?' : o.ret.toFixed(1)}] -> ${o.ret === undefined ? 'unknown' : JSON.stringify(o.output ?? {})}`;
  return [`key ${v.key} is not linearizable; no order explains`, `  ${show(v.blockedAt)}`, 'history of the key:', ...v.ops.map((o) => `  ${show(o)}`)].join('\n');
}

export function saveHistory(file: string, ops: Op[]): void {
  fs.writeFileSync(file, ops.map((o) => JSON.stringify(o)).join('\n') + '\n');
}

export function loadHistory(file: string): Op[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Op);
}
