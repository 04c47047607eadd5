// The Raft log as the core sees it: a snapshot followed by entries, all in
// memory, with marks for what is durable (stable), committed and applied.
// Storage keeps the durable copy; this one is rebuilt from it at start.
import { decodeConf, type ConfState, type Entry, type Snapshot, type SnapshotMeta } from './types.ts';

export class RaftLog {
  /** Metadata of the latest snapshot; entries start right after it. */
  snapshot: SnapshotMeta;
  /** The latest snapshot with its data, kept to send to followers that fell behind it. */
  snapshotFull: Snapshot | null;
  private entries: Entry[];
  /** Highest index the host has made durable. */
  stable: number;
  committed: number;
  applied: number;

  constructor(snapshot: Snapshot | null, entries: readonly Entry[], committed: number, applied: number) {
    this.snapshotFull = snapshot;
    this.snapshot = snapshot?.meta ?? { index: 0, term: 0, conf: { voters: [], learners: [] } };
    this.entries = [...entries];
    for (let i = 0; i < this.entries.length; i++) {
      if (this.entries[i].index !== this.snapshot.index + 1 + i) throw new Error('raft log: entries are not contiguous after the snapshot');
    }
    this.stable = this.lastIndex();
    // A durable state machine is often ahead of the stored commit index, which storage writes only along with entries,
    // term or vote. What it applied was committed (and is in this log, which is synced before any entry is
    // acknowledged), so start from there rather than deliver it a second time.
    this.committed = Math.max(committed, this.snapshot.index, Math.min(applied, this.lastIndex()));
    this.applied = Math.max(this.snapshot.index, Math.min(applied, this.committed));
  }

  firstIndex(): number {
    return this.snapshot.index + 1;
  }

  lastIndex(): number {
    return this.snapshot.index + this.entries.length;
  }

  lastTerm(): number {
    return this.term(this.lastIndex())!;
  }

  /** The term at `index`, or undefined where the log has no entry (compacted away, or beyond its end). */
  term(index: number): number | undefined {
    if (index === this.snapshot.index) return this.snapshot.term;
    if (index < this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshot.index - 1].term;
  }

  entry(index: number): Entry | undefined {
    if (index <= this.snapshot.index || index > this.lastIndex()) return undefined;
    return this.entries[index - this.snapshot.index - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Entries in [lo, hi), which must not reach below the snapshot. */
  slice(lo: number, hi: number): Entry[] {
    const off = this.snapshot.index + 1;
    return this.entries.slice(lo - off, hi - off);
  }

  /** Whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one (§5.4.1). */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Append entries that continue the log (a leader's own proposals). */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    if (entries[0].index !== this.lastIndex() + 1) throw new Error('raft log: append must continue the log');
    this.entries.push(...entries);
  }

  /**
   * A follower's side of AppendEntries once prevIndex/prevTerm matched: skip
   * entries it already has, drop its log from the first conflicting entry and
   * append the rest. A stale or reordered message never truncates entries
   * that agree with it. Returns the first index that was replaced or added.
   */
  appendFromLeader(entries: readonly Entry[]): number | undefined {
    for (const e of entries) {
      const mine = this.term(e.index);
      if (mine === e.term) continue;
      if (e.index <= this.committed) throw new Error(`raft log: leader conflicts with committed entry ${e.index}`);
      const keep = e.index - this.snapshot.index - 1;
      this.entries.length = keep;
      this.stable = Math.min(this.stable, e.index - 1);
      this.entries.push(...entries.slice(entries.indexOf(e)));
      return e.index;
    }
    return undefined;
  }

  /**
   * For fast back-off: the largest index at or below `index` whose term is at
   * most `term`. Entries after it cannot match a log whose term there is `term`.
   */
  lastIndexWithTermAtMost(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    while (i > this.snapshot.index) {
      const t = this.term(i)!;
      if (t <= term) return { index: i, term: t };
      i--;
    }
    return { index: this.snapshot.index, term: this.snapshot.term };
  }

  /** Entries not yet handed to storage. */
  unstable(): Entry[] {
    return this.slice(this.stable + 1, this.lastIndex() + 1);
  }

  /** Committed entries not yet applied, limited to what is durable here. */
  toApply(): Entry[] {
    const hi = Math.min(this.committed, this.lastIndex());
    return hi > this.applied ? this.slice(this.applied + 1, hi + 1) : [];
  }

  /** Replace everything with a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    this.snapshotFull = snapshot;
    this.snapshot = snapshot.meta;
    this.entries = [];
    this.stable = snapshot.meta.index;
    this.committed = snapshot.meta.index;
    this.applied = snapshot.meta.index;
  }

  /** Forget entries covered by a snapshot the state machine took. */
  compact(snapshot: Snapshot): void {
    const idx = snapshot.meta.index;
    if (idx <= this.snapshot.index) return;
    if (idx > this.applied) throw new Error(`raft log: cannot compact to ${idx}, only ${this.applied} is applied`);
    if (this.term(idx) !== snapshot.meta.term) throw new Error(`raft log: snapshot term does not match the log at ${idx}`);
    this.entries = this.entries.slice(idx - this.snapshot.index);
    this.snapshot = snapshot.meta;
    this.snapshotFull = snapshot;
  }

  /** The configuration in force at `index`: the latest config entry at or before it, committed or not. */
  confAt(index: number): { conf: ConfState; index: number } {
    for (let i = Math.min(index, this.lastIndex()); i > this.snapshot.index; i--) {
      const e = this.entry(i)!;
      if (e.type === 'config') return { conf: decodeConf(e.data), index: i };
    }
    return { conf: this.snapshot.conf, index: this.snapshot.index };
  }
}
