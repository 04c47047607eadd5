// Jepsen-style runs on a real 3-node cluster: a correct cluster passes the
// linearizability check under kills and pauses; one with reads that skip
// ReadIndex is caught.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeViolation } from './jepsen/linearizability.ts';
import { jepsenRun } from './jepsen/run.ts';

describe('jepsen', () => {
  it('finds the history linearizable and no acknowledged write lost while nodes are killed and paused', async (t) => {
    const r = await jepsenRun({ seed: 7, seconds: 8 });
    t.diagnostic(`${r.ops} ops (${r.unknown} of unknown outcome), ${r.ackedWrites} acked set writes; faults: ${r.faults.join('; ')}`);
    assert.ok(r.faults.some((f) => f.startsWith('kill') || f.startsWith('pause')), 'the nemesis did something');
    assert.ok(r.ops > 100, `only ${r.ops} operations`);
    assert.equal(r.verdict.result, 'ok', r.verdict.result === 'violation' ? describeViolation(r.verdict) : JSON.stringify(r.verdict));
    assert.equal(r.lostAckedWrites, 0);
  });

  it('catches stale reads when reads skip ReadIndex and the leader is paused', async () => {
    const r = await jepsenRun({ seed: 1, seconds: 8, staleReads: true, nemesis: 'pause-leader' });
    assert.equal(r.verdict.result, 'violation');
  });
});
