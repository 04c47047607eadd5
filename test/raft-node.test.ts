// RaftNode on real parts: SQLite storage with fsync, WebSocket transport on
// loopback, snapshots and InstallSnapshot across a restart.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { decodeMessages, encodeMessages } from '../src/raft/codec.ts';
import { RaftNode } from '../src/raft/node.ts';
import { RaftStorage } from '../src/raft/storage.ts';
import { Transport } from '../src/raft/transport.ts';
import type { Message } from '../src/raft/types.ts';
import { createCa } from '../src/security/pki.ts';
import { log, nodeTls, startMember, stopMember, until, type Member } from './helpers/raft-members.ts';
import { tempDir } from './helpers/proc.ts';

describe('raft node', () => {
  const members: Member[] = [];
  after(async () => {
    for (const m of members) await stopMember(m).catch(() => {});
  });

  it('replicates over WebSockets, snapshots, and brings a restarted node back through InstallSnapshot', async () => {
    const ids = ['a', 'b', 'c'];
    const dirs = ids.map(() => tempDir('raft-node-'));
    for (let i = 0; i < 3; i++) members.push(await startMember(ids[i], dirs[i], ids, 0, { tickMs: 20, snapshotEvery: 25 }));
    const leader = () => members.find((m) => m.node.status().role === 'leader');
    // Deadlines for a busy machine: fsync on every append, three members in this one process.
    const roles = () => members.map((m) => `${m.id}:${m.node.status().role}`);
    await until(() => leader() !== undefined, 20_000, 'a leader', roles);

    for (let i = 0; i < 60; i++) await leader()!.node.propose(Buffer.from(`cmd-${i}`));
    await until(
      () => members.every((m) => m.applied.length === 60),
      20_000,
      'every node to apply 60 commands',
      () => members.map((m) => m.applied.length),
    );
    for (const m of members) assert.deepEqual(m.applied, members[0].applied, `${m.id} applied the same commands in the same order`);
    assert.ok(leader()!.node.status().snapshotIndex > 0, 'the log was compacted');

    // Stop a follower, move the cluster well past its log, start it again from its files.
    const victim = members.find((m) => m !== leader())!;
    await stopMember(victim);
    members.splice(members.indexOf(victim), 1);
    const batch = Array.from({ length: 80 }, (_, i) => leader()!.node.propose(Buffer.from(`more-${i}`)));
    await Promise.all(batch);
    const back = await startMember(victim.id, victim.dir, null, victim.port, { tickMs: 20, snapshotEvery: 25 });
    members.push(back);
    await until(
      () => back.applied.length === 140,
      20_000,
      'the restarted node to catch up',
      () => back.applied.length,
    );
    assert.ok(back.restores >= 1, 'it caught up through a snapshot');
    assert.deepEqual(back.applied, leader()!.applied);
  });

  it('tells followers of a commit soon, even when no other message to them would carry it', async () => {
    // Heartbeats every 3 s: only the held commit notice's own timer can tell a follower of a commit within a second.
    const tuning = { tickMs: 50, heartbeatTicks: 60, electionTicks: 100 };
    const ids = ['d', 'e', 'f'];
    const trio: Member[] = [];
    for (const id of ids) {
      const m = await startMember(id, tempDir('raft-notice-'), ids, 0, tuning);
      trio.push(m);
      members.push(m);
    }
    const roles = () => trio.map((m) => `${m.id}:${m.node.status().role}`);
    await until(() => trio.some((m) => m.node.status().role === 'leader'), 30_000, 'a leader', roles);
    const leader = trio.find((m) => m.node.status().role === 'leader')!;
    // Each write waits for the last to be applied everywhere, so no later append carries its commit. Without the timer a
    // follower would see each commit only with a heartbeat: about one write in three would make it within the second.
    for (let i = 0; i < 6; i++) {
      await leader.node.propose(Buffer.from(`notice-${i}`));
      await until(
        () => trio.every((m) => m.applied.length === i + 1),
        1_000,
        `every member to apply write ${i}`,
        () => trio.map((m) => m.applied.length),
      );
    }
    for (const m of trio) {
      await stopMember(m);
      members.splice(members.indexOf(m), 1);
    }
  });

  it('snapshots a large state only once the log has grown by as much, and at ten times the count at the latest', async () => {
    const storage = RaftStorage.open(tempDir('raft-snap-'));
    storage.bootstrap({ voters: ['solo'], learners: [] });
    // A state machine whose image is 2 MiB however few entries it holds: past the size where snapshots are sized.
    const node = new RaftNode({
      id: 'solo',
      storage,
      send: () => {},
      log,
      applied: 0,
      apply: (entries) => entries.map(() => undefined),
      restore: () => {},
      takeSnapshot: () => new Uint8Array(2 << 20),
      tickMs: 20,
      snapshotEvery: 10,
    });
    node.start();
    try {
      await until(() => node.status().role === 'leader', 5_000, 'the lone voter to lead');
      const write = async (n: number) => {
        for (let i = 0; i < n; i++) await node.propose(new Uint8Array(1000));
      };
      // The first snapshot comes by the count (there was none to size against); from then on 2 MiB of entries are due.
      await write(12);
      const first = node.status().snapshotIndex;
      assert.ok(first >= 10 && first <= 13, `a snapshot after the first 10 entries, at ${first}`);
      await write(60);
      assert.equal(node.status().snapshotIndex, first, 'no snapshot while the log holds far less than the 2 MiB image');
      await write(40);
      assert.ok(node.status().snapshotIndex >= first + 100, `one at ten times the count at the latest, at ${node.status().snapshotIndex}`);
    } finally {
      node.stop();
      storage.close();
    }
  });

  it('ignores a peer whose certificate is not from the cluster CA', async () => {
    const target = members[0];
    const termBefore = target.node.status().term;
    // It trusts the real CA, so it does reach the node, but presents a certificate from a forged one.
    const other = members.find((m) => m !== target)!.id;
    const forged = await nodeTls(other, await createCa('forged'));
    const intruder = new Transport({
      selfId: other,
      tls: forged,
      log,
      resolve: () => `127.0.0.1:${target.port}`,
      onMessages: () => {},
    });
    intruder.send([{ type: 'vote', from: other, to: target.id, term: termBefore + 100, preVote: false, lastIndex: 1e9, lastTerm: 1e9, transfer: true }]);
    // The point of the test: nothing may happen. Two seconds, long enough on a busy machine for the connection
    // attempt to have got as far as it can (a vote that got through would raise the term at once).
    await new Promise((r) => setTimeout(r, 2000));
    intruder.close();
    assert.ok(target.node.status().term < termBefore + 100, 'the forged vote never reached the core');
  });

  it('encodes every message type and rejects garbage frames', () => {
    const entry = { index: 3, term: 2, type: 'normal' as const, data: new Uint8Array([1, 2, 3]) };
    const msgs: Message[] = [
      { type: 'append', from: 'a', to: 'b', term: 2, prevIndex: 2, prevTerm: 1, entries: [entry], commit: 2 },
      { type: 'appendResp', from: 'b', to: 'a', term: 2, reject: true, index: 2, hintIndex: 1, hintTerm: 1 },
      { type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 2, readSeq: 4 },
      { type: 'heartbeatResp', from: 'b', to: 'a', term: 2, readSeq: 4 },
      { type: 'vote', from: 'a', to: 'b', term: 3, preVote: true, lastIndex: 3, lastTerm: 2, transfer: false },
      { type: 'voteResp', from: 'b', to: 'a', term: 3, preVote: true, reject: false },
      {
        type: 'snapshot',
        from: 'a',
        to: 'b',
        term: 2,
        snapshot: { meta: { index: 3, term: 2, conf: { voters: ['a'], learners: [] } }, data: new Uint8Array([9]) },
      },
      { type: 'timeoutNow', from: 'a', to: 'b', term: 2 },
      { type: 'readIndex', from: 'b', to: 'a', term: 2, ctx: 'r1' },
      { type: 'readIndexResp', from: 'a', to: 'b', term: 2, ctx: 'r1', index: 3 },
    ];
    const back = decodeMessages(encodeMessages(msgs))!;
    assert.equal(back.length, msgs.length);
    const plain = (v: unknown) => JSON.parse(JSON.stringify(v, (_k, x) => (x instanceof Uint8Array ? [...x] : x?.type === 'Buffer' ? x.data : x)));
    for (let i = 0; i < msgs.length; i++) assert.deepEqual(plain(back[i]), plain(msgs[i]));
    assert.ok((back[0] as Extract<Message, { type: 'append' }>).entries[0].data instanceof Uint8Array);
    let rejected = 0;
    for (let i = 0; i < 2000; i++) if (decodeMessages(randomBytes(1 + (i % 200))) === undefined) rejected++;
    assert.equal(rejected, 2000, 'random frames never decode into messages');
    assert.equal(decodeMessages(encodeMessages([{ ...msgs[0], term: -1 }])), undefined);
    assert.equal(decodeMessages(encodeMessages([{ type: 'vote', from: 'a', to: 'b', term: 1 } as unknown as Message])), undefined);
  });
});
