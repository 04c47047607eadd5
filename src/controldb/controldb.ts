// The controldb as the rest of firecampd sees it: linearizable KV, txn,
// leases and watch on top of Raft. Writes go through the leader's log (a
// follower forwards them); reads are linearizable through ReadIndex unless
// the caller asks for a serializable one; watches are served from the local
// replica, which applies every entry in order, so a leader change neither
// skips nor repeats an event.
import { randomInt } from 'node:crypto';
import { UserError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { OutcomeUnknownError } from '../raft/node.ts';
import { RaftError, type ConfChange, type NodeId, type Status } from '../raft/types.ts';
import type { KvStore } from './store.ts';
import type { Command, RangeRequest, RangeResponse, TxnRequest, TxnResponse, WatchEvent } from './types.ts';

/** What the controldb needs of consensus (implemented by RaftNode). */
export interface Consensus {
  propose(data: Uint8Array): Promise<unknown>;
  readIndex(): Promise<void>;
  proposeConfChange(cc: ConfChange): Promise<unknown>;
  transferLeadership(to: NodeId): void;
  status(): Status;
}

/** Sends a request to another node's API (used to reach the leader). */
export type Forwarder = (node: NodeId, method: string, path: string, body: unknown) => Promise<unknown>;

export interface ControlDbOptions {
  store: KvStore;
  raft: Consensus;
  forward: Forwarder;
  log: Logger;
  /** How long a request waits for a leader during an election before failing (retryably). */
  electionWaitMs?: number;
  /**
   * Fault injection for tests only: serve "linearizable" reads from the local
   * replica without ReadIndex, so that the Jepsen test can show it catches
   * stale reads. Set by FIRECAMPD_UNSAFE_STALE_READS=true; never in production.
   */
  unsafeStaleReads?: boolean;
  now?: () => number;
}

export const UNAVAILABLE = 'unavailable';

export class ControlDb {
  readonly store: KvStore;
  private readonly raft: Consensus;
  private readonly forwardTo: Forwarder;
  private readonly log: Logger;
  private readonly electionWaitMs: number;
  private readonly now: () => number;
  private readonly unsafeStaleReads: boolean;
  /** Leader only: when each lease runs out, kept in memory; keepalives never touch the log. */
  private deadlines = new Map<number, number>();
  private revoking = new Set<number>();
  private leaseTimer: NodeJS.Timeout | null = null;

  constructor(opts: ControlDbOptions) {
    this.store = opts.store;
    this.raft = opts.raft;
    this.forwardTo = opts.forward;
    this.log = opts.log;
    this.electionWaitMs = opts.electionWaitMs ?? 3000;
    this.now = opts.now ?? Date.now;
    this.unsafeStaleReads = opts.unsafeStaleReads ?? false;
  }

  // ------------------------------------------------------------ KV

  async txn(req: TxnRequest, forwarded = false): Promise<TxnResponse> {
    return this.onLeader('/v1/kv/txn', req, forwarded, async () => {
      for (const op of [...req.success, ...req.failure]) {
        if ('put' in op && op.put.lease && !this.store.lease(op.put.lease)) {
          throw new UserError(`lease ${op.put.lease} does not exist (expired or revoked)`, 404, 'lease_not_found');
        }
      }
      return (await this.propose({ op: 'txn', txn: req })) as TxnResponse;
    });
  }

  async range(req: RangeRequest, serializable = false): Promise<RangeResponse & { revision: number }> {
    if (!serializable && !this.unsafeStaleReads) await this.linearize();
    return { ...this.store.range(req), revision: this.store.revision() };
  }

  /** Wait until this replica reflects every write acknowledged before the call. */
  async linearize(): Promise<void> {
    await this.withElectionWait(() => this.raft.readIndex());
  }

  // ------------------------------------------------------------ leases

  async leaseGrant(ttlSeconds: number, forwarded = false): Promise<{ id: number; ttl: number }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > 86_400) {
      throw new UserError('ttl must be a whole number of seconds from 1 to 86400');
    }
    return this.onLeader('/v1/lease/grant', { ttl: ttlSeconds }, forwarded, async () => {
      const id = randomInt(1, 2 ** 47);
      await this.propose({ op: 'lease_grant', id, ttl: ttlSeconds });
      this.deadlines.set(id, this.now() + ttlSeconds * 1000);
      return { id, ttl: ttlSeconds };
    });
  }

  async leaseKeepAlive(id: number, forwarded = false): Promise<{ id: number; ttl: number }> {
    return this.onLeader('/v1/lease/keepalive', { id }, forwarded, async () => {
      const lease = this.store.lease(id);
      if (!lease || this.revoking.has(id)) throw new UserError(`lease ${id} does not exist (expired or revoked)`, 404, 'lease_not_found');
      this.deadlines.set(id, this.now() + lease.ttl * 1000);
      // Answered only once a quorum confirms that this node still leads (ReadIndex): a deposed leader that does not know it
      // yet must not confirm a keepalive, since the new one counts the lease's TTL from its own election. So a confirmed
      // keepalive was sent before the next leader was elected, and the lease cannot expire before it was sent + TTL.
      await this.raft.readIndex();
      return { id, ttl: lease.ttl };
    });
  }

  async leaseRevoke(id: number, forwarded = false): Promise<{ revision: number }> {
    return this.onLeader('/v1/lease/revoke', { id }, forwarded, async () => {
      const r = (await this.propose({ op: 'lease_revoke', id })) as { revision: number };
      this.deadlines.delete(id);
      return r;
    });
  }

  /**
   * Called when this node gains or loses leadership. A new leader gives every
   * lease a full TTL from now: it cannot know when the old leader last heard
   * a keepalive, and expiring a lease early would be wrong.
   */
  leadershipChanged(isLeader: boolean): void {
    this.deadlines.clear();
    this.revoking.clear();
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    this.leaseTimer = null;
    if (!isLeader) return;
    const now = this.now();
    for (const l of this.store.leases()) this.deadlines.set(l.id, now + l.ttl * 1000);
    this.leaseTimer = setInterval(() => this.expireLeases(), 50);
    this.leaseTimer.unref();
  }

  private expireLeases(): void {
    const now = this.now();
    for (const [id, deadline] of this.deadlines) {
      if (deadline > now || this.revoking.has(id)) continue;
      this.revoking.add(id);
      this.log.info({ lease: id }, 'lease expired');
      this.propose({ op: 'lease_revoke', id }).then(
        () => {
          this.deadlines.delete(id);
          this.revoking.delete(id);
        },
        (err) => {
          this.revoking.delete(id); // tried again on the next round, or by the next leader
          this.log.warn({ lease: id, err: errorMessage(err) }, 'could not revoke expired lease');
        },
      );
    }
  }

  // ------------------------------------------------------------ watch

  /**
   * Deliver every event on `key` (or under it, with `prefix`) from `fromRevision`
   * on, then live ones, in revision order. Throws CompactedError if history
   * from that revision is gone. Returns a function that stops the watch.
   */
  watch(key: string, prefix: boolean, fromRevision: number, onEvents: (revision: number, events: WatchEvent[]) => void): () => void {
    const start = fromRevision > 0 ? fromRevision : this.store.revision() + 1;
    // Replay and subscribe in one synchronous step: no entry can be applied in between.
    const past = this.store.events(start, key, prefix);
    let last = start - 1;
    for (let i = 0; i < past.length;) {
      const rev = past[i].revision;
      const batch: WatchEvent[] = [];
      while (i < past.length && past[i].revision === rev) batch.push(past[i++].event);
      onEvents(rev, batch);
      last = rev;
    }
    const end = prefix ? null : key;
    return this.store.onEvents((rev, events) => {
      if (rev <= last) return;
      const mine = events.filter((e) => (end === null ? e.kv.key.startsWith(key) : e.kv.key === end));
      if (mine.length > 0) onEvents(rev, mine);
    });
  }

  // ------------------------------------------------------------ helpers

  private async propose(cmd: Command): Promise<unknown> {
    let result: unknown;
    try {
      result = await this.raft.propose(Buffer.from(JSON.stringify(cmd)));
    } catch (err) {
      if (err instanceof OutcomeUnknownError) throw new UserError(`${err.message}; the request may or may not have been applied`, 504, 'unknown_outcome');
      throw err;
    }
    if (result && typeof result === 'object' && 'error' in result) {
      const e = result as { error: string; code: string };
      throw new UserError(e.error, 409, e.code);
    }
    return result;
  }

  /** Run `fn` here if this node leads (it may be synchronous: a throw rejects), otherwise hand the request to the leader. */
  private async onLeader<T>(path: string, body: unknown, forwarded: boolean, fn: () => T | Promise<T>): Promise<T> {
    return this.withElectionWait(async () => {
      const st = this.raft.status();
      if (st.role === 'leader') return fn();
      if (st.leader === null) throw new RaftError('not_leader', 'no leader', null);
      if (forwarded) {
        // Forwarded to us, but we no longer lead: the caller retries rather than bouncing it around.
        throw new RaftError('not_leader', 'leadership moved while forwarding', st.leader);
      }
      return (await this.forwardTo(st.leader, 'POST', path, body)) as T;
    });
  }

  /**
   * During an election, wait briefly for a leader; then fail with a retryable
   * error, never a wrong answer. Only errors that prove the request was not
   * applied (refused before it reached a log) are retried here.
   */
  private async withElectionWait<T>(fn: () => Promise<T>): Promise<T> {
    const deadline = this.now() + this.electionWaitMs;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        const retryable = err instanceof RaftError && (err.code === 'not_leader' || err.code === 'transferring');
        if (!retryable || this.now() >= deadline) {
          if (retryable) {
            throw new UserError('no leader: the cluster is electing one or has lost its quorum; the request may be retried', 503, UNAVAILABLE);
          }
          throw err;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  close(): void {
    this.leadershipChanged(false);
  }
}
