// Jepsen-style runs on a real 3-node cluster: a correct cluster passes the
// linearizability check under kills and pauses; one with reads that skip
// ReadIndex is caught.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeViolation } from './jepsen/linearizability.ts';
import { jepsenRun } from './jepsen/run.ts';

describe('jepsen', () => {
  for (const seed of [7, 8]) {
    it(`finds the history linearizable and no acknowledged write lost while nodes are killed, paused and partitioned (seed ${seed})`, async (t) => {
      const r = await jepsenRun({ seed, seconds: 8 });
      t.diagnostic(`${r.ops} ops (${r.unknown} of unknown outcome), ${r.ackedWrites} acked set writes; faults: ${r.faults.join('; ')}`);
      assert.ok(r.faults.length >= 2, 'the nemesis did something');
      assert.ok(r.ops > 100, `only ${r.ops} operations`);
      assert.equal(r.verdict.result, 'ok', r.verdict.result === 'violation' ? describeViolation(r.verdict) : JSON.stringify(r.verdict));
      assert.equal(r.lostAckedWrites, 0);
    });
  }

  it('catches stale reads when reads skip ReadIndex and the leader is partitioned away', async () => {
    const r = await jepsenRun({ seed: 1, seconds: 12, staleReads: true, nemesis: 'partition-leader' });
    assert.equal(r.verdict.result, 'violation', `faults: ${r.faults.join('; ')}`);
  });
});
