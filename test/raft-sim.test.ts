// The Raft core under seeded simulation: the correct core survives every
// fault, and each planted bug is caught by the checks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { plantedBugs } from '../sim/bugs.ts';
import { runSeed, type RunOptions } from '../sim/run.ts';
import { earlyConfChange, figure8 } from '../sim/scenarios.ts';

function caught(seeds: number, opts: RunOptions): { runs: number; kinds: Set<string> } {
  let runs = 0;
  const kinds = new Set<string>();
  for (let s = 1; s <= seeds; s++) {
    const safety = runSeed(s, opts).violations.filter((v) => v.kind !== 'liveness');
    if (safety.length > 0) runs++;
    for (const v of safety) kinds.add(v.kind);
  }
  return { runs, kinds };
}

describe('raft simulation', () => {
  it('finds no violation in 300 seeds of faults with the real core', () => {
    for (let s = 1; s <= 300; s++) {
      const r = runSeed(s);
      assert.deepEqual(r.violations, [], `seed ${s}: replay with npm run sim -- --seed ${s}`);
      assert.ok(r.liveness);
    }
  });

  it('does real work in those runs: elections, crashes, snapshots, membership changes, reads', () => {
    const total: Record<string, number> = {};
    for (let s = 1; s <= 100; s++) for (const [k, v] of Object.entries(runSeed(s).stats)) total[k] = (total[k] ?? 0) + v;
    for (const k of ['acked', 'readsServed', 'elections', 'crashes', 'partitions', 'snapshots', 'confChanges', 'transfers']) {
      assert.ok(total[k] > 50, `${k}: only ${total[k]} in 100 seeds`);
    }
  });

  it('replays a seed exactly', () => {
    const a = runSeed(4242);
    const b = runSeed(4242);
    assert.deepEqual(a, b);
    assert.notDeepEqual(runSeed(4243).stats, a.stats);
  });

  it('catches a vote granted twice in one term', () => {
    const r = caught(60, { factory: plantedBugs['double-vote'] });
    assert.ok(r.runs >= 5, `caught in ${r.runs} of 60 seeds`);
    assert.ok(r.kinds.has('election_safety'));
  });

  it('catches a vote granted to a candidate with a shorter log', () => {
    const r = caught(60, { factory: plantedBugs['vote-short-log'] });
    assert.ok(r.runs >= 5, `caught in ${r.runs} of 60 seeds`);
    assert.ok(r.kinds.has('leader_completeness'));
  });

  it('catches reads served without ReadIndex', () => {
    const r = caught(60, { factory: plantedBugs['stale-read'] });
    assert.ok(r.runs >= 5, `caught in ${r.runs} of 60 seeds`);
    assert.ok(r.kinds.has('stale_read'));
  });

  it('catches several membership changes in flight at once', () => {
    const r = caught(150, {
      factory: plantedBugs['concurrent-conf-changes'],
      voters: 5,
      faults: { confChange: 0.1, crash: 0.03, partition: 0.03, healAfter: 15 },
    });
    assert.ok(r.runs >= 2, `caught in ${r.runs} of 150 seeds`);
  });

  it('walks through Figure 8 unharmed, and catches a leader that commits an old-term entry by counting replicas', () => {
    assert.deepEqual(figure8(), []);
    const v = figure8(plantedBugs['commit-old-term']);
    assert.ok(
      v.some((x) => x.kind === 'leader_completeness' || x.kind === 'state_machine_safety'),
      JSON.stringify(v),
    );
  });

  it('refuses an early membership change, and catches one proposed before the leader committed an entry of its term', () => {
    assert.deepEqual(earlyConfChange(), []);
    const v = earlyConfChange(plantedBugs['early-conf-change']);
    assert.ok(
      v.some((x) => x.kind === 'leader_completeness' || x.kind === 'state_machine_safety'),
      JSON.stringify(v),
    );
  });
});
