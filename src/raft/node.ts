// The host of the Raft core on a real node: a timer ticks it, the transport
// feeds it messages, and every Ready is handled in the order the core asks
// for — persist (fsync), send, apply, advance. Proposals made in the same
// turn of the event loop go into one batch and one fsync.
import type { Logger } from '../log.ts';
import { Raft } from './raft.ts';
import type { RaftStorage } from './storage.ts';
import { RaftError, type ConfChange, type Entry, type Message, type NodeId, type Ready, type Snapshot, type Status } from './types.ts';

/** An append without entries: it only carries the leader's commit index. */
const commitOnly = (m: Message) => m.type === 'append' && m.entries.length === 0;

/**
 * How long a commit-only append may wait for another message to the same follower to share its frame. Under load the
 * next append comes well within this; an idle cluster's followers learn a commit this much later.
 */
const COMMIT_NOTICE_HOLD_MS = 5;

/**
 * A snapshot copies the whole state machine, on every node at about the same index, and stalls each node's loop while
 * it does (a 15 MiB store: 40 to 130 ms). Up to this size the log is compacted every `snapshotEvery` entries; past it the
 * log also waits until the entries applied since the last snapshot add up to that snapshot's size, so that snapshots
 * write no more than the log itself (snapshotted every 10,000 entries of 300 bytes, that store wrote five times as much
 * for its snapshots as for its log).
 */
const SNAPSHOT_SIZED_ABOVE = 1 << 20;

/** The write may or may not have been applied: the caller must not assume either. */
export class OutcomeUnknownError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutcomeUnknownError';
  }
}

export interface RaftNodeOptions {
  id: NodeId;
  storage: RaftStorage;
  send: (msgs: readonly Message[]) => void;
  log: Logger;
  /** Apply committed entries in order; one result per entry. */
  apply: (entries: readonly Entry[]) => unknown[];
  restore: (snapshot: Snapshot) => void;
  takeSnapshot: () => Uint8Array;
  /** The state machine's durable applied index. */
  applied: number;
  tickMs?: number;
  /**
   * Default 5 ticks of 100 ms, as etcd's 1 s: a leader's death is noticed in 0.5 to 1 s, so that the survivors renew
   * their node leases with the next leader inside their fence deadline (1.75 s after the last keepalive at the default
   * TTL). Pre-vote and check-quorum keep a follower that is merely slow from unseating a live leader.
   */
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Take a snapshot and compact the log every this many applied entries (at the least; see SNAPSHOT_SIZED_ABOVE). */
  snapshotEvery?: number;
  proposalTimeoutMs?: number;
  readTimeoutMs?: number;
  onLeaderChange?: (leader: NodeId | null, isLeader: boolean) => void;
  random?: () => number;
}

interface Waiter {
  term: number;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface PendingRead {
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  index?: number;
}

export class RaftNode {
  private readonly raft: Raft;
  private readonly waiters = new Map<number, Waiter>();
  private readonly reads = new Map<string, PendingRead>();
  private batch: { data: Uint8Array; resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  private ticker: NodeJS.Timeout | null = null;
  /** Commit-only appends held back, by follower, oldest first. */
  private held = new Map<NodeId, Message[]>();
  private heldTimer: NodeJS.Timeout | null = null;
  private readSeq = 0;
  private lastSnapshotIndex: number;
  /** The size of the last snapshot's image, and the bytes of the entries applied since it. */
  private lastSnapshotBytes: number;
  private appliedBytes = 0;
  private stopped = false;
  private readonly proposalTimeoutMs: number;
  private readonly readTimeoutMs: number;
  private readonly snapshotEvery: number;

  constructor(private readonly opts: RaftNodeOptions) {
    const durable = opts.storage.load();
    this.raft = new Raft(
      {
        id: opts.id,
        electionTicks: opts.electionTicks ?? 5,
        heartbeatTicks: opts.heartbeatTicks ?? 1,
        random: opts.random ?? Math.random,
      },
      { ...durable, applied: opts.applied },
    );
    this.lastSnapshotIndex = durable.snapshot?.meta.index ?? 0;
    this.lastSnapshotBytes = durable.snapshot?.data.length ?? 0;
    for (const e of durable.entries) if (e.index <= opts.applied) this.appliedBytes += e.data.length;
    // A state machine behind the log's snapshot (fresh, or it crashed between
    // storing a received snapshot and installing it) starts from the snapshot.
    if (durable.snapshot && opts.applied < durable.snapshot.meta.index) opts.restore(durable.snapshot);
    this.proposalTimeoutMs = opts.proposalTimeoutMs ?? 10_000;
    this.readTimeoutMs = opts.readTimeoutMs ?? 5_000;
    this.snapshotEvery = opts.snapshotEvery ?? 10_000;
  }

  /** Start ticking; call once everything that listens to this node is wired. */
  start(): void {
    this.ticker = setInterval(() => {
      this.raft.tick();
      this.process();
    }, this.opts.tickMs ?? 100);
    // A lone voter need not wait an election timeout to lead.
    const st = this.raft.status();
    if (st.conf.voters.length === 1 && st.conf.voters[0] === this.opts.id) this.raft.campaignNow();
    this.process();
  }

  status(): Status {
    return this.raft.status();
  }

  /**
   * A follower steps what arrives and handles it once this turn of the loop has read all it can: appends that came
   * together share one fsync. A leader handles each frame at once: its frames are answers, which write nothing, and an
   * ack that commits gets the client its answer before the next frame (often the other follower's ack, read in the
   * same poll) is decoded. At one client that was 8 % more writes a second in paired runs; at 64 no change showed.
   * Proposals still wait for the end of the turn, to share their fsync.
   */
  receive(msgs: readonly Message[]): void {
    if (this.stopped) return;
    for (const m of msgs) this.raft.step(m);
    if (this.raft.role === 'leader') this.drain();
    else this.schedule();
  }

  /** Resolves with the state machine's result once the entry is applied here. */
  propose(data: Uint8Array): Promise<unknown> {
    if (this.stopped) return Promise.reject(new RaftError('stopped', 'node is stopping'));
    if (this.raft.role !== 'leader') return Promise.reject(new RaftError('not_leader', 'not the leader', this.raft.leader));
    return new Promise((resolve, reject) => {
      this.batch.push({ data, resolve, reject });
      this.schedule();
    });
  }

  /** Async so that a refusal (the Raft's throw) comes back as a rejection, like every other failure. */
  async proposeConfChange(cc: ConfChange): Promise<unknown> {
    if (this.stopped) throw new RaftError('stopped', 'node is stopping');
    const { index, term } = this.raft.proposeConfChange(cc);
    const p = this.wait(index, term);
    this.schedule();
    return p;
  }

  transferLeadership(to: NodeId): void {
    this.raft.transferLeadership(to);
    this.schedule();
  }

  /** Resolves once this replica has applied everything committed before the call (ReadIndex). */
  readIndex(): Promise<void> {
    if (this.stopped) return Promise.reject(new RaftError('stopped', 'node is stopping'));
    const ctx = `${this.opts.id}:${++this.readSeq}`;
    if (!this.raft.readIndex(ctx)) return Promise.reject(new RaftError('not_leader', 'no leader to confirm a read', null));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.reads.delete(ctx);
        reject(new RaftError('not_leader', 'the read was not confirmed in time (leader lost or unreachable)', this.raft.leader));
      }, this.readTimeoutMs);
      this.reads.set(ctx, { resolve, reject, timer });
      this.schedule();
    });
  }

  private wait(index: number, term: number): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(index);
        reject(new OutcomeUnknownError(`entry ${index} was not applied within ${this.proposalTimeoutMs} ms; it may still be`));
      }, this.proposalTimeoutMs);
      this.waiters.set(index, { term, resolve, reject, timer });
    });
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.process();
    });
  }

  private flushProposals(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    try {
      const { index, term } = this.raft.propose(batch.map((b) => b.data));
      for (const [i, b] of batch.entries()) this.wait(index + i, term).then(b.resolve, b.reject);
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
    }
  }

  private process(): void {
    if (this.stopped) return;
    this.flushProposals();
    this.drain();
  }

  /** Handle every Ready the core has, in order. */
  private drain(): void {
    if (this.stopped) return;
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      this.handle(rd);
      this.raft.advance(rd);
      // After advance, so that the core counts these entries as applied.
      const applied = this.raft.log.applied;
      if (this.snapshotDue(applied)) this.snapshot(applied);
    }
  }

  private handle(rd: Ready): void {
    const now = this.withHeld(rd.messages);
    if (rd.sendBeforePersist) {
      // The followers write while we do: one fsync fewer on the commit path.
      this.opts.send(now);
      this.opts.storage.save(rd);
    } else {
      this.opts.storage.save(rd);
      this.opts.send(now);
    }
    if (rd.snapshot) {
      this.opts.restore(rd.snapshot);
      this.lastSnapshotIndex = rd.snapshot.meta.index;
      this.lastSnapshotBytes = rd.snapshot.data.length;
      this.appliedBytes = 0;
    }
    const results = rd.committed.length > 0 ? this.opts.apply(rd.committed) : [];
    for (const e of rd.committed) this.appliedBytes += e.data.length;
    for (let i = 0; i < rd.committed.length; i++) {
      const e = rd.committed[i];
      const result = results[i];
      const w = this.waiters.get(e.index);
      if (w) {
        this.waiters.delete(e.index);
        clearTimeout(w.timer);
        if (w.term === e.term) w.resolve(result);
        // Another leader's entry took this index: ours was never committed.
        else w.reject(new RaftError('not_leader', 'leadership changed before the entry committed', this.raft.leader));
      }
    }
    const applied = rd.committed.length > 0 ? rd.committed[rd.committed.length - 1].index : this.raft.log.applied;
    for (const rs of rd.readStates) {
      const r = this.reads.get(rs.ctx);
      if (r) r.index = rs.index;
    }
    for (const [ctx, r] of this.reads) {
      if (r.index !== undefined && applied >= r.index) {
        this.reads.delete(ctx);
        clearTimeout(r.timer);
        r.resolve();
      }
    }
    if (rd.softState) {
      // A read not confirmed yet never will be: the leader it waited on is gone, or this node no longer leads. It fails
      // now, as retryable, rather than at its timeout (after which a caller waiting out an election has given up).
      for (const [ctx, r] of this.reads) {
        if (r.index !== undefined) continue;
        this.reads.delete(ctx);
        clearTimeout(r.timer);
        r.reject(new RaftError('not_leader', 'the leader changed before the read was confirmed', this.raft.leader));
      }
      const isLeader = rd.softState.role === 'leader';
      this.opts.log.info({ leader: rd.softState.leader, role: rd.softState.role, term: this.raft.term }, 'raft role changed');
      this.opts.onLeaderChange?.(rd.softState.leader, isLeader);
    }
  }

  /**
   * What to send now of `msgs`. A leader's append that carries no entries only tells a follower the new commit index.
   * Sent on its own it costs a frame each way and a turn of the follower's loop, once per commit: at one client that
   * doubled the Raft frames on the commit path. So it waits, briefly, for the next message to that follower (the next
   * append, a heartbeat or a read's answer) and goes in the same frame, first, as the leader produced them. A message
   * may always be late in Raft, so holding one back is safe; the timer bounds how late.
   */
  private withHeld(msgs: readonly Message[]): readonly Message[] {
    const going = new Set<NodeId>();
    for (const m of msgs) if (!commitOnly(m)) going.add(m.to);
    const now: Message[] = [];
    for (const to of going) {
      const held = this.held.get(to);
      if (held) {
        now.push(...held);
        this.held.delete(to);
      }
    }
    for (const m of msgs) {
      if (going.has(m.to)) {
        now.push(m);
        continue;
      }
      const held = this.held.get(m.to);
      if (held) held.push(m);
      else this.held.set(m.to, [m]);
    }
    if (this.held.size > 0 && !this.heldTimer) {
      this.heldTimer = setTimeout(() => {
        this.heldTimer = null;
        const late = [...this.held.values()].flat();
        this.held.clear();
        if (!this.stopped && late.length > 0) this.opts.send(late);
      }, COMMIT_NOTICE_HOLD_MS);
    }
    return now;
  }

  private snapshotDue(applied: number): boolean {
    const since = applied - this.lastSnapshotIndex;
    if (since < this.snapshotEvery) return false;
    // The core keeps the log since the last snapshot in memory: ten times the count at the most, whatever the sizes.
    return this.lastSnapshotBytes <= SNAPSHOT_SIZED_ABOVE || this.appliedBytes >= this.lastSnapshotBytes || since >= 10 * this.snapshotEvery;
  }

  private snapshot(index: number): void {
    const snap: Snapshot = { meta: this.raft.snapshotMetaAt(index), data: this.opts.takeSnapshot() };
    this.raft.compact(snap);
    this.opts.storage.compact(snap);
    this.lastSnapshotIndex = index;
    this.lastSnapshotBytes = snap.data.length;
    this.appliedBytes = 0;
    this.opts.log.info({ index, bytes: snap.data.length }, 'snapshot taken, log compacted');
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.held.clear();
    const err = new RaftError('stopped', 'node is stopping');
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(new OutcomeUnknownError('node stopped before the entry was applied; it may still be'));
    }
    for (const r of this.reads.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    for (const b of this.batch) b.reject(err);
    this.waiters.clear();
    this.reads.clear();
    this.batch = [];
  }
}
