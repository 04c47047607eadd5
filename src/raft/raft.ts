// The Raft core: a deterministic state machine with no I/O, timers or
// randomness of its own. The host feeds it ticks, messages and proposals and
// drains ready(): what to persist, send, apply and answer. Its shape follows
// etcd-io/raft's Ready hand-off; the code is our own.
//
// Beyond the paper it does pre-vote and check-quorum (a node that was cut off
// cannot disrupt a healthy cluster; a leader without a quorum steps down),
// pipelined and batched replication with fast back-off, snapshots with
// InstallSnapshot, single-server membership changes with learners,
// leadership transfer and ReadIndex.
//
// Membership follows the Raft thesis (§4.1): a server uses the latest
// configuration in its log, committed or not; a leader proposes one change at
// a time, and only once it has committed an entry of its own term.
import { RaftLog } from './log.ts';
import { Progress } from './progress.ts';
import {
  RaftError,
  encodeConf,
  type ConfChange,
  type ConfState,
  type DurableState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type PeerStatus,
  type ReadState,
  type Ready,
  type Role,
  type Snapshot,
  type SoftState,
  type Status,
} from './types.ts';

export interface RaftOptions {
  id: NodeId;
  /** Ticks without a leader before a follower campaigns; randomized in [electionTicks, 2*electionTicks). */
  electionTicks?: number;
  heartbeatTicks?: number;
  /** Seeded source of randomness in [0, 1); the only one the core uses. */
  random: () => number;
  /** Appends in flight to one follower (pipelining window). */
  maxInflight?: number;
  maxEntriesPerMessage?: number;
  maxBytesPerMessage?: number;
}

interface PendingRead {
  ctx: string;
  from: NodeId;
  /** The read index, known once the leader has committed an entry of its term. */
  index: number | null;
  seq: number;
}

type MessageOf<T extends Message['type']> = Extract<Message, { type: T }>;
type Outgoing = Message extends infer M ? (M extends Message ? Omit<M, 'from'> : never) : never;

const EMPTY = new Uint8Array(0);

export class Raft {
  readonly id: NodeId;
  term: number;
  vote: NodeId | null;
  role: Role = 'follower';
  leader: NodeId | null = null;
  readonly log: RaftLog;
  conf: ConfState = { voters: [], learners: [] };
  /** Index of the entry that set `conf` (the snapshot's index if none after it). */
  confIndex = 0;

  protected readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly random: () => number;
  private readonly maxInflight: number;
  private readonly maxEntries: number;
  private readonly maxBytes: number;

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private votes = new Map<NodeId, boolean>();
  private progress = new Map<NodeId, Progress>();
  private termStartIndex = 0;
  private transferee: NodeId | null = null;
  private transferElapsed = 0;

  private readSeq = 0;
  private ackedReadSeq = new Map<NodeId, number>();
  private pendingReads: PendingRead[] = [];
  private readHeartbeatDue = false;

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private receivedSnapshot: Snapshot | null = null;
  private lastHard: HardState;
  private lastSoft: SoftState;

  constructor(opts: RaftOptions, durable: DurableState) {
    this.id = opts.id;
    this.electionTicks = opts.electionTicks ?? 10;
    this.heartbeatTicks = opts.heartbeatTicks ?? 1;
    this.random = opts.random;
    this.maxInflight = opts.maxInflight ?? 64;
    this.maxEntries = opts.maxEntriesPerMessage ?? 512;
    this.maxBytes = opts.maxBytesPerMessage ?? 1 << 20;
    if (this.heartbeatTicks >= this.electionTicks) throw new Error('raft: heartbeatTicks must be below electionTicks');

    const hs = durable.hardState;
    this.term = hs.term;
    this.vote = hs.vote;
    this.log = new RaftLog(durable.snapshot, durable.entries, hs.commit, durable.applied ?? 0);
    this.lastHard = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.lastSoft = { leader: null, role: 'follower' };
    this.refreshConf();
    this.becomeFollower(this.term, null);
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    if (this.role === 'leader') {
      this.tickLeader();
      return;
    }
    this.electionElapsed++;
    if (this.isVoter(this.id) && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign('pre');
    }
  }

  step(m: Message): void {
    if (m.to !== this.id) return;
    if (m.term > this.term) {
      if (m.type === 'vote' && !m.transfer && this.inLease()) {
        // Check-quorum lease: we heard from a live leader within an election
        // timeout, so this candidate is disruptive (e.g. just back from a partition).
        return;
      }
      const keepsTerm = (m.type === 'vote' && m.preVote) || (m.type === 'voteResp' && m.preVote && !m.reject);
      if (!keepsTerm) {
        const fromLeader = m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
        this.becomeFollower(m.term, fromLeader ? m.from : null);
      }
    } else if (m.term < this.term) {
      if (m.type === 'append' || m.type === 'heartbeat') {
        // A stale leader: our answer carries the newer term and makes it step down.
        this.send({ type: 'appendResp', to: m.from, term: this.term, reject: true, index: 0, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'vote' && m.preVote) {
        this.send({ type: 'voteResp', to: m.from, term: this.term, preVote: true, reject: true });
      }
      return;
    }

    switch (m.type) {
      case 'vote':
        return this.handleVote(m);
      case 'voteResp':
        return this.handleVoteResp(m);
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        if (this.role === 'leader') return; // same term, another leader: impossible; election safety is checked elsewhere
        if (this.role !== 'follower') this.becomeFollower(this.term, m.from);
        this.leader = m.from;
        this.electionElapsed = 0;
        if (m.type === 'append') return this.handleAppend(m);
        if (m.type === 'heartbeat') return this.handleHeartbeat(m);
        return this.handleSnapshot(m);
      case 'appendResp':
        return this.handleAppendResp(m);
      case 'heartbeatResp':
        return this.handleHeartbeatResp(m);
      case 'timeoutNow':
        if (this.isVoter(this.id) && this.role !== 'leader') this.campaign('transfer');
        return;
      case 'readIndex':
        if (this.role === 'leader') this.addRead(m.ctx, m.from);
        return;
      case 'readIndexResp':
        this.readStates.push({ ctx: m.ctx, index: m.index });
        return;
    }
  }

  /** Append commands to the log; returns the index of the first. Only on the leader. */
  propose(commands: readonly Uint8Array[]): { index: number; term: number } {
    this.checkCanPropose();
    const first = this.log.lastIndex() + 1;
    this.appendEntries(commands.map((data, i) => ({ index: first + i, term: this.term, type: 'normal', data })));
    return { index: first, term: this.term };
  }

  proposeConfChange(cc: ConfChange): { index: number; term: number } {
    this.checkCanPropose();
    const refusal = this.confChangeRefusal();
    if (refusal) throw new RaftError('conf_change_pending', refusal, this.id);
    const conf = applyConfChange(this.conf, cc);
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ index, term: this.term, type: 'config', data: encodeConf(conf) }]);
    return { index, term: this.term };
  }

  /** Hand leadership to `to` once its log is current. Proposals are refused meanwhile. */
  transferLeadership(to: NodeId): void {
    if (this.role !== 'leader') throw new RaftError('not_leader', 'not the leader', this.leader);
    if (to === this.id) return;
    if (!this.isVoter(to)) throw new RaftError('bad_conf_change', `${to} is not a voter`, this.id);
    this.transferee = to;
    this.transferElapsed = 0;
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.send({ type: 'timeoutNow', to, term: this.term });
    else this.sendAppend(to, pr, true);
  }

  /**
   * Ask for a linearizable read. A ReadState with `ctx` comes out of ready()
   * once a quorum confirmed this node's leadership (on a follower, once the
   * leader answered); the read may then be served when `applied` reaches its
   * index. Returns false when no leader is known (the caller retries).
   */
  readIndex(ctx: string): boolean {
    if (this.role === 'leader') {
      this.addRead(ctx, this.id);
      return true;
    }
    if (this.leader === null) return false;
    this.send({ type: 'readIndex', to: this.leader, term: this.term, ctx });
    return true;
  }

  /** Start an election now (used to bootstrap a single node without waiting a timeout). */
  campaignNow(): void {
    if (this.role !== 'leader' && this.isVoter(this.id)) this.campaign('pre');
  }

  /** The state machine took a snapshot: the log before it may go. */
  compact(snapshot: Snapshot): void {
    this.log.compact(snapshot);
  }

  /** Metadata a snapshot taken at `index` (≤ applied) must carry. */
  snapshotMetaAt(index: number): Snapshot['meta'] {
    const term = this.log.term(index);
    if (term === undefined || index > this.log.applied) throw new Error(`raft: no applied entry at ${index} to snapshot`);
    return { index, term, conf: this.log.confAt(index).conf };
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    return (
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.receivedSnapshot !== null ||
      this.readHeartbeatDue ||
      this.log.stable < this.log.lastIndex() ||
      this.log.toApply().length > 0 ||
      !sameHard(this.hardState(), this.lastHard) ||
      !sameSoft(this.softState(), this.lastSoft)
    );
  }

  ready(): Ready {
    if (this.readHeartbeatDue) {
      this.readHeartbeatDue = false;
      this.broadcastHeartbeat();
    }
    const hard = this.hardState();
    const soft = this.softState();
    const rd: Ready = {
      // Only a leader's messages (appends, heartbeats) may overtake its own
      // persist, and only when no term or vote is waiting to be made durable.
      sendBeforePersist: this.role === 'leader' && hard.term === this.lastHard.term && hard.vote === this.lastHard.vote && this.receivedSnapshot === null,
      softState: sameSoft(soft, this.lastSoft) ? undefined : soft,
      hardState: sameHard(hard, this.lastHard) ? undefined : hard,
      snapshot: this.receivedSnapshot ?? undefined,
      entries: this.log.unstable(),
      messages: this.msgs,
      committed: this.log.toApply(),
      readStates: this.readStates,
    };
    this.msgs = [];
    this.readStates = [];
    this.receivedSnapshot = null;
    return rd;
  }

  /** The host persisted, sent and applied everything in `rd`. */
  advance(rd: Ready): void {
    if (rd.hardState) this.lastHard = rd.hardState;
    if (rd.softState) this.lastSoft = rd.softState;
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry) this.log.stable = Math.max(this.log.stable, lastEntry.index);
    const lastApplied = rd.committed[rd.committed.length - 1];
    if (lastApplied) this.log.applied = Math.max(this.log.applied, lastApplied.index);
    // The leader's own entries count towards a quorum only once durable.
    if (this.role === 'leader' && lastEntry && this.maybeCommit()) this.broadcastAppend(true);
  }

  status(): Status {
    const peers: Record<NodeId, PeerStatus> = {};
    if (this.role === 'leader') {
      for (const [id, pr] of this.progress) {
        peers[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, learner: pr.learner };
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshot.index,
      conf: this.conf,
      ...(this.role === 'leader' ? { peers } : {}),
    };
  }

  // ------------------------------------------------- decisions (tests plant bugs here)

  /** §5.4.2: a leader commits by counting replicas only entries of its own term. */
  protected mayCommitAt(index: number): boolean {
    return this.log.term(index) === this.term;
  }

  /** One vote per term; pre-votes are free since they change nothing. */
  protected mayVoteFor(m: MessageOf<'vote'>): boolean {
    return this.vote === m.from || (this.vote === null && this.leader === null) || (m.preVote && m.term > this.term);
  }

  /** §5.4.1: grant only to a candidate whose log is at least as up to date. */
  protected candidateLogOk(m: MessageOf<'vote'>): boolean {
    return this.log.isUpToDate(m.lastIndex, m.lastTerm);
  }

  /** Why a membership change may not be proposed now, or null if it may. */
  protected confChangeRefusal(): string | null {
    if (this.log.committed < this.termStartIndex) return 'the leader has not yet committed an entry of its term; retry shortly';
    if (this.confIndex > this.log.committed) return 'a membership change is still in progress; retry once it commits';
    return null;
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: number, leader: NodeId | null): void {
    if (term > this.term) {
      this.term = term;
      this.vote = null;
    }
    this.role = 'follower';
    this.leader = leader;
    this.reset();
  }

  private reset(): void {
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + Math.floor(this.random() * this.electionTicks);
    this.votes.clear();
    this.progress.clear();
    this.transferee = null;
    this.pendingReads = [];
    this.ackedReadSeq.clear();
    this.readHeartbeatDue = false;
  }

  private campaign(kind: 'pre' | 'real' | 'transfer'): void {
    if (kind === 'pre') {
      this.role = 'precandidate';
      this.leader = null;
      this.votes.clear();
    } else {
      this.becomeFollower(this.term + 1, null);
      this.role = 'candidate';
      this.vote = this.id;
    }
    this.votes.set(this.id, true);
    if (this.tally() === 'won') {
      if (kind === 'pre') this.campaign('real');
      else this.becomeLeader();
      return;
    }
    const term = kind === 'pre' ? this.term + 1 : this.term;
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      this.send({
        type: 'vote',
        to: v,
        term,
        preVote: kind === 'pre',
        lastIndex: this.log.lastIndex(),
        lastTerm: this.log.lastTerm(),
        transfer: kind === 'transfer',
      });
    }
  }

  private becomeLeader(): void {
    this.role = 'leader';
    this.leader = this.id;
    this.reset();
    this.syncProgress();
    for (const v of this.conf.voters) if (v !== this.id) this.ackedReadSeq.set(v, 0);
    // A no-op of our own term: committing it commits everything before it (§5.4.2, §8).
    this.termStartIndex = this.log.lastIndex() + 1;
    this.appendEntries([{ index: this.termStartIndex, term: this.term, type: 'normal', data: EMPTY }]);
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.transferee !== null && ++this.transferElapsed >= this.electionTicks) this.transferee = null;
    for (const [id, pr] of this.progress) {
      if (pr.state === 'snapshot' && --pr.snapshotTicks <= 0) {
        pr.becomeProbe(); // the snapshot or its answer was lost: try again
        this.sendAppend(id, pr, true);
      }
    }
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (!this.quorumActive()) {
        this.becomeFollower(this.term, null); // check-quorum: we may be the minority side of a partition
        return;
      }
      for (const pr of this.progress.values()) pr.recentActive = false;
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.conf.voters) if (v === this.id || this.progress.get(v)?.recentActive) active++;
    return active >= quorum(this.conf.voters.length);
  }

  private inLease(): boolean {
    return this.leader !== null && this.electionElapsed < this.electionTicks;
  }

  // ---------------------------------------------------------------- voting

  private handleVote(m: MessageOf<'vote'>): void {
    if (this.mayVoteFor(m) && this.candidateLogOk(m)) {
      // A granted pre-vote answers in the term the candidate will campaign in.
      this.send({ type: 'voteResp', to: m.from, term: m.preVote ? m.term : this.term, preVote: m.preVote, reject: false });
      if (!m.preVote) {
        this.vote = m.from;
        this.electionElapsed = 0;
      }
    } else {
      this.send({ type: 'voteResp', to: m.from, term: this.term, preVote: m.preVote, reject: true });
    }
  }

  private handleVoteResp(m: MessageOf<'voteResp'>): void {
    const waiting = (this.role === 'precandidate' && m.preVote) || (this.role === 'candidate' && !m.preVote);
    if (!waiting) return;
    this.votes.set(m.from, !m.reject);
    const outcome = this.tally();
    if (outcome === 'won') {
      if (this.role === 'precandidate') this.campaign('real');
      else this.becomeLeader();
    } else if (outcome === 'lost') {
      this.becomeFollower(this.term, null);
    }
  }

  private tally(): 'won' | 'lost' | 'pending' {
    let granted = 0;
    let rejected = 0;
    for (const v of this.conf.voters) {
      const g = this.votes.get(v);
      if (g === true) granted++;
      else if (g === false) rejected++;
    }
    const q = quorum(this.conf.voters.length);
    if (granted >= q) return 'won';
    if (rejected >= q || this.conf.voters.length - rejected < q) return 'lost';
    return 'pending';
  }

  // ---------------------------------------------------------------- follower side

  private handleAppend(m: MessageOf<'append'>): void {
    if (m.prevIndex < this.log.committed) {
      // Everything up to our commit index already matches the leader: say so.
      this.send({ type: 'appendResp', to: m.from, term: this.term, reject: false, index: this.log.committed, hintIndex: 0, hintTerm: 0 });
      return;
    }
    if (!this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const hint = this.log.lastIndexWithTermAtMost(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
      this.send({ type: 'appendResp', to: m.from, term: this.term, reject: true, index: m.prevIndex, hintIndex: hint.index, hintTerm: hint.term });
      return;
    }
    const changedFrom = this.log.appendFromLeader(m.entries);
    const lastNew = m.prevIndex + m.entries.length;
    if (changedFrom !== undefined && (this.confIndex >= changedFrom || m.entries.some((e) => e.type === 'config'))) {
      this.refreshConf();
    }
    this.commitTo(Math.min(m.commit, lastNew));
    this.send({ type: 'appendResp', to: m.from, term: this.term, reject: false, index: lastNew, hintIndex: 0, hintTerm: 0 });
  }

  private handleHeartbeat(m: MessageOf<'heartbeat'>): void {
    // The leader sends min(commit, our match), which our log is known to hold.
    this.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.send({ type: 'heartbeatResp', to: m.from, term: this.term, readSeq: m.readSeq });
  }

  private handleSnapshot(m: MessageOf<'snapshot'>): void {
    const meta = m.snapshot.meta;
    if (meta.index <= this.log.committed) {
      this.send({ type: 'appendResp', to: m.from, term: this.term, reject: false, index: this.log.committed, hintIndex: 0, hintTerm: 0 });
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We have the snapshot's last entry: our log up to it is the leader's.
      this.commitTo(meta.index);
    } else {
      this.log.restore(m.snapshot);
      this.receivedSnapshot = m.snapshot;
      this.refreshConf();
    }
    this.send({ type: 'appendResp', to: m.from, term: this.term, reject: false, index: meta.index, hintIndex: 0, hintTerm: 0 });
  }

  private commitTo(index: number): void {
    if (index > this.log.committed) this.log.committed = index;
  }

  // ---------------------------------------------------------------- leader side

  private checkCanPropose(): void {
    if (this.role !== 'leader') throw new RaftError('not_leader', 'not the leader', this.leader);
    if (this.transferee !== null) throw new RaftError('transferring', `leadership is moving to ${this.transferee}`, this.id);
  }

  private appendEntries(entries: Entry[]): void {
    this.log.append(entries);
    if (entries.some((e) => e.type === 'config')) this.refreshConf();
    this.broadcastAppend(false);
  }

  private broadcastAppend(sendIfEmpty: boolean): void {
    for (const [id, pr] of this.progress) this.sendAppend(id, pr, sendIfEmpty);
  }

  /** Send what `pr` lacks, as far as its flow-control state allows. */
  private sendAppend(to: NodeId, pr: Progress, sendIfEmpty: boolean): void {
    while (pr.canSend(this.maxInflight)) {
      const prevIndex = pr.next - 1;
      const prevTerm = this.log.term(prevIndex);
      if (prevTerm === undefined) {
        this.sendSnapshot(to, pr);
        return;
      }
      const entries = this.entriesFrom(pr.next);
      if (entries.length === 0 && !sendIfEmpty && pr.state === 'replicate') return;
      this.send({ type: 'append', to, term: this.term, prevIndex, prevTerm, entries, commit: this.log.committed });
      if (pr.state === 'probe') {
        pr.probeSent = true;
        return;
      }
      if (entries.length === 0) return;
      const last = entries[entries.length - 1].index;
      pr.next = last + 1;
      pr.inflight.push(last);
      sendIfEmpty = false;
    }
  }

  private entriesFrom(next: number): Entry[] {
    const last = Math.min(this.log.lastIndex(), next + this.maxEntries - 1);
    if (last < next) return [];
    const out = this.log.slice(next, last + 1);
    let bytes = 0;
    for (let i = 0; i < out.length; i++) {
      bytes += out[i].data.length + 24;
      if (bytes > this.maxBytes && i > 0) return out.slice(0, i);
    }
    return out;
  }

  private sendSnapshot(to: NodeId, pr: Progress): void {
    const snap = this.log.snapshotFull;
    if (!snap) throw new Error('raft: log compacted without a snapshot to send');
    pr.becomeSnapshot(snap.meta.index, this.electionTicks * 2);
    this.send({ type: 'snapshot', to, term: this.term, snapshot: snap });
  }

  private broadcastHeartbeat(): void {
    for (const [id, pr] of this.progress) {
      this.send({ type: 'heartbeat', to: id, term: this.term, commit: Math.min(pr.match, this.log.committed), readSeq: this.readSeq });
    }
  }

  private handleAppendResp(m: MessageOf<'appendResp'>): void {
    const pr = this.progress.get(m.from);
    if (this.role !== 'leader' || !pr) return;
    pr.recentActive = true;
    if (m.reject) {
      const stale = pr.state === 'replicate' ? m.index <= pr.match : m.index !== pr.next - 1;
      if (stale) return;
      // Fast back-off: skip every entry of a term the follower cannot share.
      const probe = m.hintTerm > 0 ? this.log.lastIndexWithTermAtMost(m.hintIndex, m.hintTerm).index : m.hintIndex;
      pr.becomeProbe();
      pr.next = Math.max(Math.min(m.index, probe + 1), pr.match + 1);
      this.sendAppend(m.from, pr, true);
      return;
    }
    const advanced = pr.ack(m.index);
    if (advanced) {
      if (pr.state === 'probe' || (pr.state === 'snapshot' && pr.match >= pr.pendingSnapshot)) pr.becomeReplicate();
      if (this.maybeCommit()) this.broadcastAppend(true);
      if (this.role !== 'leader') return; // the commit removed us from the configuration
    }
    this.sendAppend(m.from, pr, false);
    if (m.from === this.transferee && pr.match === this.log.lastIndex()) {
      this.send({ type: 'timeoutNow', to: m.from, term: this.term });
    }
  }

  private handleHeartbeatResp(m: MessageOf<'heartbeatResp'>): void {
    const pr = this.progress.get(m.from);
    if (this.role !== 'leader' || !pr) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.match < this.log.lastIndex()) {
      // A full window may be waiting on appends that were lost: free a slot so
      // that the next append reaches the follower and exposes the gap.
      if (pr.state === 'replicate' && !pr.canSend(this.maxInflight)) pr.inflight.shift();
      this.sendAppend(m.from, pr, true);
    }
    if (this.ackedReadSeq.has(m.from) && m.readSeq > this.ackedReadSeq.get(m.from)!) {
      this.ackedReadSeq.set(m.from, m.readSeq);
      this.confirmReads();
    }
  }

  /** Advance the commit index to what a quorum of voters holds. */
  private maybeCommit(): boolean {
    const matches = this.conf.voters.map((v) => (v === this.id ? this.log.stable : (this.progress.get(v)?.match ?? 0)));
    if (matches.length === 0) return false;
    matches.sort((a, b) => b - a);
    const index = matches[quorum(matches.length) - 1];
    if (index <= this.log.committed || !this.mayCommitAt(index)) return false;
    const firstInTerm = this.log.committed < this.termStartIndex && index >= this.termStartIndex;
    this.log.committed = index;
    if (firstInTerm) this.startPendingReads();
    if (!this.isVoter(this.id) && this.log.committed >= this.confIndex) {
      // Our removal is committed: the others go on without us (thesis §4.2.2).
      this.becomeFollower(this.term, null);
    }
    return true;
  }

  // ---------------------------------------------------------------- ReadIndex

  private addRead(ctx: string, from: NodeId): void {
    const read: PendingRead = { ctx, from, index: null, seq: 0 };
    this.pendingReads.push(read);
    if (this.log.committed >= this.termStartIndex) this.startPendingReads();
  }

  /** Fix the read index of waiting reads and ask the followers to confirm our leadership. */
  private startPendingReads(): void {
    let started = false;
    for (const r of this.pendingReads) {
      if (r.index !== null) continue;
      r.index = this.log.committed;
      r.seq = this.readSeq + 1;
      started = true;
    }
    if (!started) return;
    this.readSeq++;
    this.confirmReads();
    if (this.pendingReads.length > 0) this.readHeartbeatDue = true;
  }

  private confirmReads(): void {
    while (this.pendingReads.length > 0) {
      const r = this.pendingReads[0];
      if (r.index === null) return;
      let acks = 0;
      for (const v of this.conf.voters) if (v === this.id || (this.ackedReadSeq.get(v) ?? 0) >= r.seq) acks++;
      if (acks < quorum(this.conf.voters.length)) return;
      this.pendingReads.shift();
      if (r.from === this.id) this.readStates.push({ ctx: r.ctx, index: r.index });
      else this.send({ type: 'readIndexResp', to: r.from, term: this.term, ctx: r.ctx, index: r.index });
    }
  }

  // ---------------------------------------------------------------- membership

  private isVoter(id: NodeId): boolean {
    return this.conf.voters.includes(id);
  }

  /** Take the configuration from the log (latest entry wins) and match the leader's bookkeeping to it. */
  private refreshConf(): void {
    const { conf, index } = this.log.confAt(this.log.lastIndex());
    this.conf = conf;
    this.confIndex = index;
    if (this.role === 'leader') this.syncProgress();
    else if (!this.isVoter(this.id) && this.role !== 'follower') this.becomeFollower(this.term, null);
  }

  private syncProgress(): void {
    const members = new Set([...this.conf.voters, ...this.conf.learners]);
    for (const id of [...this.progress.keys()]) if (!members.has(id)) this.progress.delete(id);
    for (const id of members) {
      if (id === this.id) continue;
      const learner = this.conf.learners.includes(id);
      const pr = this.progress.get(id);
      if (!pr || pr.learner !== learner) {
        const fresh = new Progress(this.log.lastIndex() + 1, learner);
        if (pr) {
          fresh.match = pr.match;
          fresh.next = pr.next;
          fresh.state = pr.state;
          fresh.inflight = pr.inflight;
          fresh.pendingSnapshot = pr.pendingSnapshot;
          fresh.snapshotTicks = pr.snapshotTicks;
          fresh.probeSent = pr.probeSent;
        }
        this.progress.set(id, fresh);
      }
      if (!learner && !this.ackedReadSeq.has(id)) this.ackedReadSeq.set(id, 0);
    }
    for (const id of [...this.ackedReadSeq.keys()]) if (!this.isVoter(id)) this.ackedReadSeq.delete(id);
  }

  // ---------------------------------------------------------------- helpers

  private send(m: Outgoing): void {
    this.msgs.push({ ...m, from: this.id });
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }
}

export function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  const voters = [...conf.voters];
  const learners = [...conf.learners];
  const isMember = voters.includes(cc.node) || learners.includes(cc.node);
  switch (cc.type) {
    case 'addLearner':
      if (isMember) throw new RaftError('bad_conf_change', `${cc.node} is already a member`);
      return { voters, learners: [...learners, cc.node] };
    case 'promote':
      if (!learners.includes(cc.node)) throw new RaftError('bad_conf_change', `${cc.node} is not a learner`);
      return { voters: [...voters, cc.node], learners: learners.filter((n) => n !== cc.node) };
    case 'remove':
      if (!isMember) throw new RaftError('bad_conf_change', `${cc.node} is not a member`);
      if (voters.length === 1 && voters[0] === cc.node) throw new RaftError('bad_conf_change', 'cannot remove the last voter');
      return { voters: voters.filter((n) => n !== cc.node), learners: learners.filter((n) => n !== cc.node) };
  }
}

function sameHard(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoft(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}
