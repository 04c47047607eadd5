// Scripted runs that steer the simulated cluster into the two classic traps
// that random faults reach only rarely. A correct core walks through them
// unharmed; a core with the matching bug is caught by the same checks as in
// the random runs.
import { Cluster, type Faults, type RaftFactory, type Violation } from './cluster.ts';
import { RaftError } from '../src/raft/types.ts';

const CALM: Faults = {
  drop: 0,
  duplicate: 0,
  maxDelay: 1,
  crash: 0,
  crashMidReady: 0,
  crashAfterCommit: 0,
  restartAfter: 1,
  partition: 0,
  healAfter: 1,
  snapshot: 0,
  confChange: 0,
  transfer: 0,
  propose: 0,
  read: 0,
};

export function calmCluster(voters: number, spares: number, factory?: RaftFactory, flow = { maxEntriesPerMessage: 1, maxInflight: 1 }): Cluster {
  // By default one entry per message and one message in flight: replication
  // advances in small steps, so a script can stop it between any two entries.
  const c = new Cluster({ seed: 1, voters, spares, faults: CALM, factory, ...flow });
  c.faultsOn = false;
  return c;
}

/**
 * Make `id` campaign now, as a leadership transfer does (a TimeoutNow
 * message), so that the script, not a random timer, picks the candidate.
 */
export function elect(c: Cluster, id: string): boolean {
  c.runUntil(() => false, 2); // let a restarted node come up
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = c.raft(id);
    if (!r) return false;
    // A vote already cast in this term may refuse it: then it tries again one term up.
    c.deliver({ type: 'timeoutNow', from: id, to: id, term: r.term });
    if (c.runUntil(() => c.raft(id)?.role === 'leader', 8)) return true;
  }
  return false;
}

/**
 * Figure 8 of the Raft paper (§5.4.2). n1 leads term 2 and gets X onto n2
 * only; n5 leads term 3 alone with Y at the same index; n1 leads again and
 * copies X to n3. Counting replicas, X now sits on a majority — but n5 can
 * still win an election and overwrite it, unless n1 waited for an entry of
 * its own term to commit first.
 */
export function figure8(factory?: RaftFactory): Violation[] {
  const c = calmCluster(5, 0, factory);
  const n = (i: number) => `n${i}`;
  if (!elect(c, n(1))) throw new Error('figure8: n1 did not become leader');
  c.isolate([n(1), n(2)], [n(3), n(4), n(5)]);
  c.propose(n(1));
  const xIndex = c.raft(n(1))!.log.lastIndex();
  c.runUntil(() => (c.raft(n(2))?.log.lastIndex() ?? 0) >= xIndex, 20);
  c.crash(n(1), Infinity);

  c.isolate([n(3), n(4), n(5)], [n(2)]);
  if (!elect(c, n(5))) throw new Error('figure8: n5 did not become leader');
  c.isolate([n(2), n(3), n(4)]); // n5 alone: its term-3 entries stay with it
  c.propose(n(5));
  c.runUntil(() => false, 3);
  c.crash(n(5), Infinity);

  c.restart(n(1));
  c.isolate([n(1), n(2), n(3)], [n(4)]);
  if (!elect(c, n(1))) throw new Error('figure8: n1 did not lead again');
  // Once n3 holds X, n1's later entries (its own term's) no longer reach it;
  // n3's acknowledgements still reach n1.
  c.runUntil(() => (c.raft(n(3))?.log.lastIndex() ?? 0) >= xIndex, 100);
  c.cut(n(1), n(3));
  // Stop n1 the moment it believes X is committed (a correct n1 never does).
  c.runUntil(() => (c.raft(n(1))?.log.committed ?? 0) >= xIndex, 100);
  c.crash(n(1), Infinity);

  c.restart(n(5));
  c.isolate([n(2), n(3), n(4), n(5)]);
  elect(c, n(5)); // with the bug it wins, and lacks the entry n1 committed
  c.runUntil(() => c.violations.length > 0, 400);
  return c.violations;
}

/**
 * The single-server membership bug (Ongaro, raft-dev 2015). n1 adds n5 as a
 * voter but the change reaches nobody; n2 leads the old configuration and at
 * once removes n4, committing that with n3 alone. n1 can then win in its own
 * configuration with n4 and n5, and overwrite a committed entry — unless n2
 * had first committed an entry of its own term with a majority of the old
 * configuration.
 */
export function earlyConfChange(factory?: RaftFactory): Violation[] {
  const c = calmCluster(4, 1, factory);
  const [n1, n2, n3, n4, n5] = ['n1', 'n2', 'n3', 'n4', 'n5'];
  if (!elect(c, n1)) throw new Error('earlyConfChange: n1 did not become leader');
  c.runUntil(() => c.raft(n1)!.log.committed >= c.raft(n1)!.log.lastIndex(), 20);
  c.raft(n1)!.proposeConfChange({ type: 'addLearner', node: n5 });
  const learnerAt = c.raft(n1)!.log.lastIndex();
  c.runUntil(() => [n1, n2, n3, n4, n5].every((id) => (c.raft(id)?.log.committed ?? 0) >= learnerAt), 100);

  c.isolate([n2, n3, n4, n5]); // n1 alone
  c.raft(n1)!.proposeConfChange({ type: 'promote', node: n5 });
  c.runUntil(() => false, 2);
  c.crash(n1, Infinity);

  c.isolate([n2, n3, n4]);
  if (!elect(c, n2)) throw new Error('earlyConfChange: n2 did not become leader');
  c.isolate([n2, n3]); // n4 and n5 hear nothing of n2's term
  try {
    c.raft(n2)!.proposeConfChange({ type: 'remove', node: n4 });
  } catch (err) {
    if (!(err instanceof RaftError)) throw err; // a correct core refuses here
  }
  const removeAt = c.raft(n2)!.log.lastIndex();
  c.runUntil(() => (c.raft(n2)?.log.applied ?? 0) >= removeAt, 50);
  c.crash(n2, Infinity);

  c.restart(n1);
  c.isolate([n1, n4, n5]);
  elect(c, n1); // with the bug it wins in its own configuration
  c.runUntil(() => c.violations.length > 0, 400);
  return c.violations;
}
