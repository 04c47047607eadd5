// Each production feature of the Raft core, on a scripted simulated cluster.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Cluster } from '../sim/cluster.ts';
import { calmCluster, elect } from '../sim/scenarios.ts';
import { Raft } from '../src/raft/raft.ts';
import { encodeConf, RaftError, type Message } from '../src/raft/types.ts';

function started(voters = 3, spares = 0, flow = { maxEntriesPerMessage: 64, maxInflight: 4 }): Cluster {
  const c = calmCluster(voters, spares, undefined, flow);
  assert.ok(elect(c, 'n1'), 'n1 becomes leader');
  c.runUntil(() => false, 5);
  return c;
}

function record(c: Cluster): Message[] {
  const seen: Message[] = [];
  c.tap = (m) => seen.push(m);
  return seen;
}

const applied = (c: Cluster, id: string) => c.raft(id)?.log.applied ?? -1;

describe('raft core', () => {
  it('elects one leader and applies proposals on every node in the same order', () => {
    const c = started();
    for (let i = 0; i < 20; i++) c.propose('n1');
    const last = c.raft('n1')!.log.lastIndex();
    assert.ok(c.runUntil(() => ['n1', 'n2', 'n3'].every((id) => applied(c, id) === last), 50));
    assert.equal([...c.nodes.values()].filter((n) => n.raft?.role === 'leader').length, 1);
    assert.deepEqual(c.violations, []);
  });

  it('pre-vote: a node cut off for a long time does not raise the term or unseat the leader when it returns', () => {
    const c = started();
    const term = c.raft('n1')!.term;
    c.isolate(['n1', 'n2']);
    c.runUntil(() => false, 200); // n3 alone keeps timing out
    assert.equal(c.raft('n3')!.term, term, 'pre-votes do not bump the term');
    c.heal();
    c.runUntil(() => false, 50);
    assert.equal(c.raft('n1')!.role, 'leader');
    assert.equal(c.raft('n1')!.term, term);
  });

  it('check-quorum: a leader cut off from its quorum steps down, and the majority elects another', () => {
    const c = started();
    c.isolate(['n2', 'n3']);
    assert.ok(
      c.runUntil(() => c.raft('n1')!.role !== 'leader', 40),
      'old leader steps down within two election timeouts',
    );
    assert.ok(c.runUntil(() => ['n2', 'n3'].some((id) => c.raft(id)!.role === 'leader'), 60));
    assert.throws(
      () => c.raft('n1')!.propose([new Uint8Array([1])]),
      (e: unknown) => e instanceof RaftError && e.code === 'not_leader',
    );
  });

  it('batches proposals into few appends and pipelines several before the first answer', () => {
    const c = started(3, 0, { maxEntriesPerMessage: 64, maxInflight: 4 });
    const seen = record(c);
    const leader = c.raft('n1')!;
    leader.propose(Array.from({ length: 100 }, (_, i) => new Uint8Array([i])));
    for (let i = 0; i < 30; i++) c.propose('n1'); // one by one: each may go out on its own, within the window
    c.runUntil(() => applied(c, 'n2') === leader.log.lastIndex(), 50);
    const toN2 = seen.filter((m) => m.type === 'append' && m.to === 'n2' && m.entries.length > 0) as Extract<Message, { type: 'append' }>[];
    assert.ok(
      toN2.some((m) => m.entries.length === 64),
      'a full batch of 64 entries in one append',
    );
    const firstAnswer = seen.findIndex((m) => m.type === 'appendResp' && m.from === 'n2');
    const beforeAnswer = seen.slice(0, firstAnswer).filter((m) => m.type === 'append' && m.to === 'n2' && m.entries.length > 0);
    assert.ok(beforeAnswer.length >= 2, `appends in flight before the first answer: ${beforeAnswer.length}`);
  });

  it('backs off fast over a long conflicting log', () => {
    const c = started(3, 0, { maxEntriesPerMessage: 64, maxInflight: 4 });
    c.isolate(['n1'], ['n2', 'n3']);
    for (let i = 0; i < 60; i++) c.propose('n1'); // 60 entries nobody else will ever have
    assert.ok(c.runUntil(() => ['n2', 'n3'].some((id) => c.raft(id)!.role === 'leader'), 60));
    const newLeader = ['n2', 'n3'].find((id) => c.raft(id)!.role === 'leader')!;
    for (let i = 0; i < 5; i++) c.propose(newLeader);
    const seen = record(c);
    c.heal();
    assert.ok(c.runUntil(() => applied(c, 'n1') === c.raft(newLeader)!.log.lastIndex(), 80));
    const rejects = seen.filter((m) => m.type === 'appendResp' && m.from === 'n1' && m.reject).length;
    assert.ok(rejects <= 3, `${rejects} rejections to skip 60 conflicting entries`);
    assert.deepEqual(c.violations, []);
  });

  it('sends a snapshot to a follower that fell behind the compacted log, which then catches up', () => {
    const c = started();
    c.crash('n3', Infinity);
    for (let i = 0; i < 50; i++) c.propose('n1');
    c.runUntil(() => applied(c, 'n1') === c.raft('n1')!.log.lastIndex(), 30);
    c.compact('n1');
    assert.ok(c.raft('n1')!.log.snapshot.index > 40);
    const seen = record(c);
    c.restart('n3');
    assert.ok(c.runUntil(() => applied(c, 'n3') === c.raft('n1')!.log.lastIndex(), 60));
    assert.ok(
      seen.some((m) => m.type === 'snapshot' && m.to === 'n3'),
      'an InstallSnapshot was sent',
    );
    assert.deepEqual(c.violations, []);
  });

  it('adds a learner that catches up without voting, promotes it, and removes the leader', () => {
    const c = started(3, 1);
    for (let i = 0; i < 10; i++) c.propose('n1');
    c.runUntil(() => applied(c, 'n1') === c.raft('n1')!.log.lastIndex(), 20);
    c.raft('n1')!.proposeConfChange({ type: 'addLearner', node: 'n4' });
    assert.ok(
      c.runUntil(() => applied(c, 'n4') === c.raft('n1')!.log.lastIndex(), 60),
      'learner catches up',
    );
    assert.deepEqual(c.raft('n4')!.conf.learners, ['n4']);
    assert.ok(!c.raft('n1')!.conf.voters.includes('n4'));
    assert.throws(() => c.raft('n1')!.proposeConfChange({ type: 'promote', node: 'n3' }), /not a learner/);

    c.raft('n1')!.proposeConfChange({ type: 'promote', node: 'n4' });
    assert.ok(c.runUntil(() => c.raft('n4')!.conf.voters.includes('n4') && c.raft('n1')!.confIndex <= c.raft('n1')!.log.committed, 30));
    assert.deepEqual([...c.raft('n1')!.conf.voters].sort(), ['n1', 'n2', 'n3', 'n4']);

    c.raft('n1')!.proposeConfChange({ type: 'remove', node: 'n1' });
    assert.ok(
      c.runUntil(() => c.raft('n1')!.role !== 'leader', 30),
      'the removed leader steps down once its removal commits',
    );
    assert.ok(c.runUntil(() => ['n2', 'n3', 'n4'].some((id) => c.raft(id)!.role === 'leader'), 80));
    const leader = ['n2', 'n3', 'n4'].find((id) => c.raft(id)!.role === 'leader')!;
    assert.deepEqual([...c.raft(leader)!.conf.voters].sort(), ['n2', 'n3', 'n4']);
    c.propose(leader);
    assert.ok(c.runUntil(() => applied(c, leader) === c.raft(leader)!.log.lastIndex(), 20));
    c.runUntil(() => false, 100);
    assert.notEqual(c.raft('n1')!.role, 'leader', 'a removed node never leads again');
    assert.deepEqual(c.violations, []);
  });

  it('transfers leadership, refusing proposals while it does', () => {
    const c = started();
    const before = c.raft('n1')!.term;
    c.raft('n1')!.transferLeadership('n3');
    assert.throws(
      () => c.raft('n1')!.propose([new Uint8Array([1])]),
      (e: unknown) => e instanceof RaftError && e.code === 'transferring',
    );
    assert.ok(
      c.runUntil(() => c.raft('n3')!.role === 'leader', 10),
      'n3 leads within a few ticks',
    );
    assert.equal(c.raft('n3')!.term, before + 1);
    assert.deepEqual(c.violations, []);
  });

  it('ReadIndex: confirmed by a quorum on the leader and through it on a follower, never on a cut-off leader', () => {
    const c = started();
    c.read('n1');
    c.read('n2');
    assert.ok(
      c.runUntil(() => c.stats.readsServed === 2, 10),
      'both reads served',
    );
    c.isolate(['n1'], ['n2', 'n3']);
    const served = c.stats.readsServed;
    c.read('n1');
    c.runUntil(() => false, 15);
    assert.equal(c.stats.readsServed, served, 'a leader without its quorum cannot confirm a read');
    assert.deepEqual(c.violations, []);
  });

  it('restarts with a state machine ahead of the stored commit index and applies nothing twice', () => {
    const conf = { voters: ['n1', 'n2', 'n3'], learners: [] };
    const entries = [
      { index: 1, term: 1, type: 'config' as const, data: encodeConf(conf) },
      ...[2, 3, 4, 5].map((index) => ({ index, term: 1, type: 'normal' as const, data: new Uint8Array([index]) })),
    ];
    // The commit index was last made durable at 3; the state machine had applied through 5.
    const r = new Raft({ id: 'n2', random: () => 0.5 }, { hardState: { term: 1, vote: null, commit: 3 }, snapshot: null, entries, applied: 5 });
    assert.deepEqual(r.hasReady() ? r.ready().committed : [], [], 'nothing the state machine holds is delivered again');
    assert.deepEqual([r.status().commit, r.status().applied], [5, 5]);
    // Behind its log, it is handed what it lacks, once.
    const behind = new Raft({ id: 'n2', random: () => 0.5 }, { hardState: { term: 1, vote: null, commit: 3 }, snapshot: null, entries, applied: 2 });
    assert.deepEqual(
      behind.ready().committed.map((e) => e.index),
      [3],
    );
  });
});
