// A simulated cluster: Raft cores wired to an in-memory network and disks
// that the simulation can break in every way a real one breaks: lost,
// duplicated, delayed and reordered messages, symmetric and one-way
// partitions, crashes that lose whatever was not yet durable, and restarts.
// Safety properties are checked on every Ready a node produces.
import { Raft, type RaftOptions } from '../src/raft/raft.ts';
import {
  RaftError,
  encodeConf,
  type ConfChange,
  type DurableState,
  type Entry,
  type HardState,
  type Message,
  type NodeId,
  type Ready,
  type Snapshot,
} from '../src/raft/types.ts';
import { Rng } from './rng.ts';

export type RaftFactory = (opts: RaftOptions, durable: DurableState) => Raft;

export interface Faults {
  drop: number; // probability a message is lost
  duplicate: number; // probability a message is delivered twice
  maxDelay: number; // ticks; random delays reorder messages
  crash: number; // per tick: probability one node crashes
  crashMidReady: number; // per Ready: probability the node dies before it is durable
  crashAfterCommit: number; // per Ready in which a leader commits: probability it dies right after
  restartAfter: number; // ticks a crashed node stays down (at most)
  partition: number; // per tick: probability the network splits
  healAfter: number; // ticks a partition lasts (at most)
  snapshot: number; // per tick: probability a node compacts its log
  confChange: number; // per tick: probability the leader proposes a membership change
  transfer: number; // per tick: probability the leader hands over leadership
  propose: number; // per tick: client proposals
  read: number; // per tick: linearizable reads
}

export interface Violation {
  kind: 'exception' | 'election_safety' | 'log_matching' | 'leader_completeness' | 'state_machine_safety' | 'stale_read' | 'lost_ack' | 'liveness';
  detail: string;
  tick: number;
}

interface Disk {
  hard: HardState;
  snapshot: Snapshot | null;
  entries: Entry[];
}

/** The replicated state machine: an ordered history, summarized by a hash chain. */
interface Machine {
  applied: number;
  hash: number;
}

interface SimNode {
  id: NodeId;
  raft: Raft | null; // null while crashed
  disk: Disk;
  machine: Machine;
  rng: Rng;
  downUntil: number;
  /** Log-matching chain hash by index, for what this node holds durably. */
  chain: number[];
  proposals: Map<number, { term: number; id: number; tick: number }>;
  /** Reads asked of this node: ctx -> highest acknowledged index when the read began. */
  reads: Map<string, number>;
  waitingReads: { invoked: number; index: number }[];
}

interface InFlight {
  at: number;
  msg: Message;
}

export interface ClusterOptions {
  seed: number;
  voters: number;
  spares: number;
  faults: Faults;
  factory?: RaftFactory;
  electionTicks?: number;
  /** Flow control: small values expose ordering bugs that large batches hide. */
  maxEntriesPerMessage?: number;
  maxInflight?: number;
}

const enc = (n: number) => new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);

function mix(h: number, x: number): number {
  // Two 26-bit lanes of an FNV-style mix, kept exact in a double.
  let lo = h % 67108864;
  let hi = Math.floor(h / 67108864);
  lo = (Math.imul(lo ^ x, 16777619) >>> 6) & 0x3ffffff;
  hi = (Math.imul(hi ^ (x * 31 + 7), 2246822519) >>> 6) & 0x3ffffff;
  return hi * 67108864 + lo;
}

function entryHash(prev: number, e: Entry): number {
  let h = mix(prev, e.index);
  h = mix(h, e.term);
  h = mix(h, e.type === 'config' ? 1 : 2);
  for (let i = 0; i < e.data.length; i++) h = mix(h, e.data[i]);
  return h;
}

function machineHash(prev: number, e: Entry): number {
  let h = mix(prev, e.type === 'config' ? 1 : 2);
  for (let i = 0; i < e.data.length; i++) h = mix(h, e.data[i]);
  return h;
}

export class Cluster {
  readonly rng: Rng;
  readonly nodes = new Map<NodeId, SimNode>();
  tick = 0;
  readonly violations: Violation[] = [];
  readonly stats = {
    messages: 0,
    delivered: 0,
    proposals: 0,
    acked: 0,
    reads: 0,
    readsServed: 0,
    elections: 0,
    snapshots: 0,
    confChanges: 0,
    transfers: 0,
    crashes: 0,
    partitions: 0,
  };

  private queue = new Map<number, InFlight[]>();
  private blocked = new Set<string>(); // "from>to"
  private partitionUntil = 0;
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly chainOf = new Map<string, number>(); // "index:term" -> chain hash
  private readonly committed: Entry[] = []; // by index: the entry applied there
  private readonly machineAt: number[] = []; // by index: machine hash after applying it
  private maxAppliedIndex = 0;
  private maxAckedIndex = 0;
  private nextProposalId = 1;
  private nextReadId = 1;
  readonly factory: RaftFactory;
  readonly electionTicks: number;

  constructor(readonly opts: ClusterOptions) {
    this.rng = new Rng(opts.seed);
    this.factory = opts.factory ?? ((o, d) => new Raft(o, d));
    this.electionTicks = opts.electionTicks ?? 10;
    const voters = Array.from({ length: opts.voters }, (_, i) => `n${i + 1}`);
    const spares = Array.from({ length: opts.spares }, (_, i) => `n${opts.voters + i + 1}`);
    // Bootstrap as a real cluster does: the first entry of every voter's log is the initial configuration.
    const boot: Entry = { index: 1, term: 1, type: 'config', data: encodeConf({ voters, learners: [] }) };
    for (const id of voters) this.addNode(id, { hard: { term: 1, vote: null, commit: 1 }, snapshot: null, entries: [boot] });
    // Spares start empty, as a node that runs `--join` does, and wait to be added.
    for (const id of spares) this.addNode(id, { hard: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [] });
  }

  private addNode(id: NodeId, disk: Disk): void {
    const node: SimNode = {
      id,
      raft: null,
      disk,
      machine: { applied: 0, hash: 0 },
      rng: this.rng.fork(),
      downUntil: 0,
      chain: [0],
      proposals: new Map(),
      reads: new Map(),
      waitingReads: [],
    };
    for (const e of disk.entries) node.chain[e.index] = this.recordChain(node, e, node.chain[e.index - 1]);
    this.nodes.set(id, node);
    this.start(node);
  }

  private start(node: SimNode): void {
    const d = node.disk;
    node.machine = d.snapshot ? decodeMachine(d.snapshot.data) : { applied: 0, hash: 0 };
    node.raft = this.factory(
      {
        id: node.id,
        electionTicks: this.electionTicks,
        heartbeatTicks: 1,
        random: () => node.rng.next(),
        maxInflight: this.opts.maxInflight ?? 8,
        maxEntriesPerMessage: this.opts.maxEntriesPerMessage ?? 16,
      },
      { hardState: d.hard, snapshot: d.snapshot, entries: [...d.entries], applied: node.machine.applied },
    );
    node.proposals.clear();
    node.reads.clear();
    node.waitingReads = [];
  }

  // ------------------------------------------------------------ driving

  /** One tick: deliver due messages, tick every live node, inject faults and client load. */
  step(): void {
    const faultsOn = this.faultsOn;
    this.tick++;
    const f = this.opts.faults;
    const due = this.queue.get(this.tick);
    if (due) {
      this.queue.delete(this.tick);
      for (const { msg } of this.rng.shuffle(due)) this.deliver(msg);
    }
    const ids = this.rng.shuffle([...this.nodes.keys()]);
    for (const id of ids) {
      const n = this.nodes.get(id)!;
      if (!n.raft) {
        if (this.tick >= n.downUntil) {
          this.start(n);
        } else continue;
      }
      n.raft!.tick();
      this.process(n);
    }
    if (this.partitionUntil > 0 && this.tick >= this.partitionUntil) this.heal();
    if (!faultsOn) return;
    if (this.rng.chance(f.crash)) this.crash(this.rng.pick(ids));
    if (this.partitionUntil === 0 && this.rng.chance(f.partition)) this.partition(1 + this.rng.int(f.healAfter));
    if (this.rng.chance(f.snapshot)) this.compact(this.rng.pick(ids));
    if (this.pendingConfChange || this.rng.chance(f.confChange)) {
      this.pendingConfChange = false;
      this.changeMembership();
      // Now and then a second change right behind the first, while it is still in flight.
      if (this.rng.chance(0.3)) this.changeMembership();
    }
    if (this.rng.chance(f.transfer)) this.transfer();
    if (this.rng.chance(f.propose)) this.propose(this.rng.pick(ids));
    if (this.rng.chance(f.read)) this.read(this.rng.pick(ids));
  }

  /** Hand a message to its node at once, as if the network had just delivered it. */
  deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (!n?.raft || this.blocked.has(`${m.from}>${m.to}`)) return;
    this.stats.delivered++;
    n.raft.step(m);
    this.process(n);
  }

  /** Sees every message a node sends, before the network decides its fate (for tests). */
  tap: ((m: Message) => void) | null = null;

  private send(m: Message, faultsOn: boolean): void {
    this.stats.messages++;
    this.tap?.(m);
    const f = this.opts.faults;
    if (faultsOn && this.rng.chance(f.drop)) return;
    const copies = faultsOn && this.rng.chance(f.duplicate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = this.tick + (faultsOn ? this.rng.int(f.maxDelay + 1) : this.rng.int(2)) + (i === 0 ? 0 : 1);
      const t = Math.max(at, this.tick + 1);
      const slot = this.queue.get(t);
      if (slot) slot.push({ at: t, msg: m });
      else this.queue.set(t, [{ at: t, msg: m }]);
    }
  }

  /** Set when a leader was just elected: the next tick tries a membership change. */
  private pendingConfChange = false;

  /** Off once the run heals: the network is then reliable and nothing crashes. */
  faultsOn = true;

  /** Drain a node's Ready: persist, send, apply, check. */
  private process(n: SimNode): void {
    while (n.raft && n.raft.hasReady()) {
      const rd = n.raft.ready();
      if (rd.sendBeforePersist) for (const m of rd.messages) this.send(m, this.faultsOn);
      if (this.faultsOn && this.rng.chance(this.opts.faults.crashMidReady)) {
        this.crash(n.id); // dies before the Ready is durable: all of it is lost, and only a leader's messages went out
        return;
      }
      this.persist(n, rd);
      if (!rd.sendBeforePersist) for (const m of rd.messages) this.send(m, this.faultsOn);
      if (rd.softState?.role === 'leader') {
        this.checkNewLeader(n);
        // A new leader's first moments are when membership changes are most dangerous (thesis §4.1).
        if (this.faultsOn && this.rng.chance(this.opts.faults.confChange * 10)) this.pendingConfChange = true;
      }
      if (rd.snapshot) this.installSnapshot(n, rd.snapshot);
      for (const e of rd.committed) this.apply(n, e);
      for (const rs of rd.readStates) this.serveRead(n, rs.ctx, rs.index);
      n.raft.advance(rd);
      this.serveWaitingReads(n);
      if (this.faultsOn && rd.committed.length > 0 && n.raft.role === 'leader' && this.rng.chance(this.opts.faults.crashAfterCommit)) {
        // The leader dies the moment it committed, before telling anyone.
        this.crash(n.id);
        return;
      }
    }
  }

  private persist(n: SimNode, rd: Ready): void {
    const d = n.disk;
    if (rd.snapshot) {
      d.snapshot = rd.snapshot;
      d.entries = [];
      n.chain = [];
      n.chain[rd.snapshot.meta.index] = this.chainOf.get(`${rd.snapshot.meta.index}:${rd.snapshot.meta.term}`) ?? NaN;
    }
    if (rd.entries.length > 0) {
      const first = rd.entries[0].index;
      const base = d.snapshot?.meta.index ?? 0;
      d.entries.length = Math.max(0, first - base - 1);
      if (first - 1 > base + d.entries.length) throw new Error(`sim: ${n.id} persisted a gap before ${first}`);
      d.entries.push(...rd.entries);
      n.chain.length = first;
      for (const e of rd.entries) n.chain[e.index] = this.recordChain(n, e, n.chain[e.index - 1]);
    }
    if (rd.hardState) d.hard = rd.hardState;
  }

  /** Log matching: same index and term means the same log up to there, on every node. */
  private recordChain(n: SimNode, e: Entry, prev: number): number {
    const h = entryHash(prev, e);
    const key = `${e.index}:${e.term}`;
    const seen = this.chainOf.get(key);
    if (seen === undefined) this.chainOf.set(key, h);
    else if (seen !== h && !Number.isNaN(prev)) {
      this.violation('log_matching', `${n.id} holds entry ${key} with a different log before it than another node`);
    }
    return h;
  }

  private checkNewLeader(n: SimNode): void {
    const r = n.raft!;
    this.stats.elections++;
    const prev = this.leaderOfTerm.get(r.term);
    if (prev !== undefined && prev !== n.id) this.violation('election_safety', `${prev} and ${n.id} both lead term ${r.term}`);
    this.leaderOfTerm.set(r.term, n.id);
    // Leader completeness: every entry applied anywhere is in the new leader's log.
    for (let i = r.log.snapshot.index + 1; i <= this.maxAppliedIndex; i++) {
      const c = this.committed[i];
      if (c && r.log.term(i) !== c.term) {
        this.violation('leader_completeness', `leader ${n.id} of term ${r.term} lacks committed entry ${i} (term ${c.term})`);
        return;
      }
    }
    if (r.log.snapshot.index > 0 && r.log.snapshot.index <= this.maxAppliedIndex) {
      const c = this.committed[r.log.snapshot.index];
      if (c && c.term !== r.log.snapshot.term) this.violation('leader_completeness', `leader ${n.id} snapshot disagrees at ${r.log.snapshot.index}`);
    }
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.machine.applied + 1) {
      this.violation('state_machine_safety', `${n.id} applied ${e.index} after ${n.machine.applied}`);
    }
    const c = this.committed[e.index];
    if (c === undefined) {
      this.committed[e.index] = e;
      this.maxAppliedIndex = Math.max(this.maxAppliedIndex, e.index);
    } else if (c.term !== e.term || c.type !== e.type || !sameBytes(c.data, e.data)) {
      this.violation('state_machine_safety', `${n.id} applied a different entry at ${e.index} (term ${e.term} vs ${c.term})`);
    }
    n.machine = { applied: e.index, hash: machineHash(n.machine.hash, e) };
    const seen = this.machineAt[e.index];
    if (seen === undefined) this.machineAt[e.index] = n.machine.hash;
    else if (seen !== n.machine.hash) this.violation('state_machine_safety', `${n.id} state after ${e.index} differs from another node's`);
    const p = n.proposals.get(e.index);
    if (p) {
      n.proposals.delete(e.index);
      if (p.term === e.term && e.data.length === 4 && readId(e.data) === p.id) {
        this.stats.acked++;
        this.maxAckedIndex = Math.max(this.maxAckedIndex, e.index);
      }
    }
  }

  private installSnapshot(n: SimNode, s: Snapshot): void {
    const m = decodeMachine(s.data);
    const seen = this.machineAt[m.applied];
    if (seen !== undefined && seen !== m.hash) this.violation('state_machine_safety', `${n.id} installed a snapshot at ${m.applied} that differs`);
    n.machine = m;
  }

  private serveRead(n: SimNode, ctx: string, index: number): void {
    const invoked = n.reads.get(ctx);
    if (invoked === undefined) return;
    n.reads.delete(ctx);
    n.waitingReads.push({ invoked, index });
  }

  /** A read is served once its node has applied the read index; it returns the state at `applied`. */
  private serveWaitingReads(n: SimNode): void {
    if (n.waitingReads.length === 0) return;
    n.waitingReads = n.waitingReads.filter((r) => {
      if (n.machine.applied < r.index) return true;
      this.stats.readsServed++;
      if (n.machine.applied < r.invoked) {
        this.violation('stale_read', `${n.id} served a read at ${n.machine.applied} missing entry ${r.invoked}, acknowledged before the read began`);
      }
      return false;
    });
  }

  // ------------------------------------------------------------ faults and clients

  /** Kill a node: everything not durable is gone. It restarts after `downFor` ticks (random if not given). */
  crash(id: NodeId, downFor?: number): void {
    const n = this.nodes.get(id)!;
    if (!n.raft) return;
    this.stats.crashes++;
    n.raft = null;
    n.downUntil = this.tick + (downFor ?? 1 + this.rng.int(this.opts.faults.restartAfter));
    // The chain follows the disk: drop what was never made durable.
    const last = (n.disk.snapshot?.meta.index ?? 0) + n.disk.entries.length;
    n.chain.length = last + 1;
  }

  partition(duration: number): void {
    const ids = [...this.nodes.keys()];
    const side = new Set(this.rng.shuffle([...ids]).slice(0, 1 + this.rng.int(ids.length - 1)));
    const oneWay = this.rng.chance(0.3);
    this.blocked.clear();
    for (const a of ids) {
      for (const b of ids) {
        if (side.has(a) && !side.has(b)) {
          this.blocked.add(`${a}>${b}`);
          if (!oneWay) this.blocked.add(`${b}>${a}`);
        }
      }
    }
    this.partitionUntil = this.tick + duration;
    this.stats.partitions++;
  }

  /** Scripted partition: nodes talk only within their group; a node in no group is alone. */
  isolate(...groups: NodeId[][]): void {
    const groupOf = new Map<NodeId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    this.blocked.clear();
    const ids = [...this.nodes.keys()];
    for (const a of ids) {
      for (const b of ids) {
        const ga = groupOf.get(a) ?? `alone:${a}`;
        const gb = groupOf.get(b) ?? `alone:${b}`;
        if (a !== b && ga !== gb) this.blocked.add(`${a}>${b}`);
      }
    }
    this.partitionUntil = 0;
  }

  /** Scripted one-way fault: messages from `from` to `to` are lost from now on. */
  cut(from: NodeId, to: NodeId): void {
    this.blocked.add(`${from}>${to}`);
  }

  restart(id: NodeId): void {
    this.nodes.get(id)!.downUntil = this.tick;
  }

  /** Step until `done()` holds; false if it did not within `maxTicks`. */
  runUntil(done: () => boolean, maxTicks: number): boolean {
    for (let i = 0; i < maxTicks; i++) {
      this.step();
      if (done()) return true;
    }
    return false;
  }

  raft(id: NodeId): Raft | null {
    return this.nodes.get(id)!.raft;
  }

  heal(): void {
    this.blocked.clear();
    this.partitionUntil = 0;
  }

  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.raft?.role === 'leader' && (!best || n.raft.term > best.raft!.term)) best = n;
    }
    return best;
  }

  propose(id: NodeId): number | undefined {
    const n = this.nodes.get(id)!;
    if (!n.raft || n.raft.role !== 'leader') return undefined;
    const pid = this.nextProposalId++;
    try {
      const { index, term } = n.raft.propose([enc(pid)]);
      n.proposals.set(index, { term, id: pid, tick: this.tick });
      this.stats.proposals++;
      this.process(n);
      return pid;
    } catch (err) {
      if (err instanceof RaftError) return undefined;
      throw err;
    }
  }

  read(id: NodeId): void {
    const n = this.nodes.get(id)!;
    if (!n.raft) return;
    const ctx = `r${this.nextReadId++}`;
    if (n.raft.readIndex(ctx)) {
      // Linearizability of reads: it must see every write acknowledged before it began.
      n.reads.set(ctx, this.maxAckedIndex);
      this.stats.reads++;
      this.process(n);
    }
  }

  compact(id: NodeId): void {
    const n = this.nodes.get(id)!;
    const r = n.raft;
    if (!r) return;
    const applied = r.log.applied;
    const keep = this.rng.int(4);
    const index = applied - keep;
    if (index <= r.log.snapshot.index) return;
    const meta = r.snapshotMetaAt(index);
    // Rebuild the machine at `index` from the global record (the node's own history up to there is identical).
    const hash = this.machineAt[index];
    if (hash === undefined) return;
    const snap: Snapshot = { meta, data: encodeMachine({ applied: index, hash }) };
    r.compact(snap);
    n.disk.snapshot = snap;
    n.disk.entries = n.disk.entries.filter((e) => e.index > index);
    this.stats.snapshots++;
  }

  changeMembership(): void {
    const l = this.leader();
    if (!l) return;
    const r = l.raft!;
    const conf = r.conf;
    const all = [...this.nodes.keys()];
    const outsiders = all.filter((id) => !conf.voters.includes(id) && !conf.learners.includes(id));
    const options: ConfChange[] = [];
    for (const id of outsiders) options.push({ type: 'addLearner', node: id });
    for (const id of conf.learners) options.push({ type: 'promote', node: id }, { type: 'remove', node: id });
    if (conf.voters.length > 2) for (const id of conf.voters) options.push({ type: 'remove', node: id });
    if (options.length === 0) return;
    const cc = this.rng.pick(options);
    try {
      r.proposeConfChange(cc);
      this.stats.confChanges++;
      this.process(l);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  transfer(): void {
    const l = this.leader();
    if (!l) return;
    const others = l.raft!.conf.voters.filter((v) => v !== l.id);
    if (others.length === 0) return;
    try {
      l.raft!.transferLeadership(this.rng.pick(others));
      this.stats.transfers++;
      this.process(l);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
    }
  }

  /** Bring everything back: restart crashed nodes, heal the network. */
  recoverAll(): void {
    this.heal();
    for (const n of this.nodes.values()) if (!n.raft) n.downUntil = this.tick;
  }

  violation(kind: Violation['kind'], detail: string): void {
    this.violations.push({ kind, detail, tick: this.tick });
  }

  get maxAcked(): number {
    return this.maxAckedIndex;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function readId(d: Uint8Array): number {
  return ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
}

function encodeMachine(m: Machine): Uint8Array {
  return new TextEncoder().encode(`${m.applied}:${m.hash}`);
}

function decodeMachine(d: Uint8Array): Machine {
  const [a, h] = new TextDecoder().decode(d).split(':');
  return { applied: Number(a), hash: Number(h) };
}
