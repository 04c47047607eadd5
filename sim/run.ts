// One seeded simulation: a stretch of chaos while clients write and read,
// then the faults heal and the cluster must elect a leader, commit a new
// entry and bring every member up to date within a bounded number of ticks.
import { Cluster, type Faults, type RaftFactory, type Violation } from './cluster.ts';
import { Rng } from './rng.ts';

export interface RunOptions {
  chaosTicks?: number;
  livenessTicks?: number;
  factory?: RaftFactory;
  /** Force a cluster shape instead of drawing one from the seed. */
  voters?: number;
  spares?: number;
  faults?: Partial<Faults>;
  maxEntriesPerMessage?: number;
  maxInflight?: number;
}

export interface RunResult {
  seed: number;
  voters: number;
  steps: number;
  violations: Violation[];
  liveness: boolean;
  stats: Cluster['stats'];
}

export function drawFaults(rng: Rng): Faults {
  // One seed in four is a storm: leaders come and go every few heartbeats,
  // which is where subtle commit and election bugs show.
  if (rng.chance(0.25)) {
    return {
      drop: rng.pick([0.05, 0.2]),
      duplicate: 0.05,
      maxDelay: 1 + rng.int(4),
      crash: rng.pick([0.03, 0.08]),
      crashMidReady: 0.01,
      crashAfterCommit: rng.pick([0, 0.05, 0.2]),
      restartAfter: 5 + rng.int(20),
      partition: rng.pick([0.03, 0.08]),
      healAfter: 5 + rng.int(30),
      snapshot: rng.pick([0, 0.05]),
      confChange: rng.pick([0, 0.03]),
      transfer: rng.pick([0, 0.03]),
      propose: 1,
      read: 0.2,
    };
  }
  return {
    drop: rng.pick([0, 0.02, 0.1, 0.25]),
    duplicate: rng.pick([0, 0.02, 0.1]),
    maxDelay: 1 + rng.int(6),
    crash: rng.pick([0, 0.003, 0.01, 0.02]),
    crashMidReady: rng.pick([0, 0.001, 0.005]),
    crashAfterCommit: rng.pick([0, 0, 0.01]),
    restartAfter: 10 + rng.int(50),
    partition: rng.pick([0, 0.005, 0.02]),
    healAfter: 20 + rng.int(80),
    snapshot: rng.pick([0, 0.02, 0.1]),
    confChange: rng.pick([0, 0.01, 0.05]),
    transfer: rng.pick([0, 0.005, 0.02]),
    propose: rng.pick([0.2, 0.6, 1]),
    read: rng.pick([0, 0.1, 0.4]),
  };
}

export function runSeed(seed: number, opts: RunOptions = {}): RunResult {
  const shape = new Rng(seed * 7919 + 13);
  const voters = opts.voters ?? shape.pick([3, 3, 5]);
  const spares = opts.spares ?? shape.int(3);
  const faults = { ...drawFaults(shape), ...opts.faults };
  const maxEntriesPerMessage = opts.maxEntriesPerMessage ?? shape.pick([1, 4, 16, 64]);
  const maxInflight = opts.maxInflight ?? shape.pick([1, 4, 16]);
  const cluster = new Cluster({ seed, voters, spares, faults, factory: opts.factory, maxEntriesPerMessage, maxInflight });
  const chaos = opts.chaosTicks ?? 500;
  const limit = opts.livenessTicks ?? 300;

  let liveness = true;
  try {
    for (let i = 0; i < chaos && cluster.violations.length === 0; i++) {
      cluster.step();
      // Client load goes on throughout; the leader keeps proposing.
      const l = cluster.leader();
      if (l && cluster.rng.chance(faults.propose)) cluster.propose(l.id);
    }
    if (cluster.violations.length === 0) {
      cluster.faultsOn = false;
      cluster.recoverAll();
      // Catching up a backlog one small message at a time takes a round trip
      // (at most 4 ticks once healed) per message: the bound allows for it.
      const bound = limit + Math.ceil((4 * backlog(cluster)) / Math.min(maxEntriesPerMessage * maxInflight, 16));
      liveness = awaitConvergence(cluster, bound);
      if (!liveness) {
        cluster.violation('liveness', `no leader committed a new entry and caught every member up within ${bound} ticks of healing`);
      }
    }
    if (cluster.violations.length === 0) checkAcknowledged(cluster);
  } catch (err) {
    // A core that throws has reached a state it believes impossible: that is a failure too.
    cluster.violation('exception', err instanceof Error ? (err.stack ?? err.message) : String(err));
  }
  return { seed, voters, steps: cluster.tick, violations: cluster.violations, liveness, stats: cluster.stats };
}

/** After healing: a leader emerges, commits a fresh proposal, and every member applies it. */
function awaitConvergence(c: Cluster, limit: number): boolean {
  const deadline = c.tick + limit;
  let target = 0;
  while (c.tick < deadline) {
    c.step();
    const l = c.leader();
    if (!l || !l.raft!.conf.voters.includes(l.id)) continue;
    if (target === 0 || l.raft!.log.committed < target) {
      if (target === 0 || l.raft!.log.lastIndex() < target) {
        if (c.propose(l.id) !== undefined) target = l.raft!.log.lastIndex();
      }
      continue;
    }
    // Every member must also have applied every acknowledged entry, including
    // old-term entries a new leader acknowledged only now, as it committed them.
    const members = [...l.raft!.conf.voters, ...l.raft!.conf.learners];
    const need = Math.max(target, c.maxAcked);
    if (members.every((id) => (c.nodes.get(id)!.raft?.log.applied ?? 0) >= need)) return true;
  }
  return false;
}

/** Entries some member may still have to receive. */
function backlog(c: Cluster): number {
  let hi = 0;
  let lo = Infinity;
  for (const n of c.nodes.values()) {
    const last = (n.disk.snapshot?.meta.index ?? 0) + n.disk.entries.length;
    hi = Math.max(hi, last);
    lo = Math.min(lo, n.disk.hard.commit);
  }
  return Math.max(0, hi - lo);
}

/** Every acknowledged proposal must be applied, at its index, on every member. */
function checkAcknowledged(c: Cluster): void {
  const l = c.leader();
  if (!l) return;
  const members = [...l.raft!.conf.voters, ...l.raft!.conf.learners];
  for (const id of members) {
    const n = c.nodes.get(id)!;
    if (n.raft && n.raft.log.applied < c.maxAcked) {
      c.violation('lost_ack', `${id} applied only up to ${n.raft.log.applied}; entry ${c.maxAcked} was acknowledged`);
    }
  }
}
