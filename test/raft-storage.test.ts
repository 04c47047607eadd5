// The Raft log's files and the storage around them, on real files with
// fdatasync: what a restarted node reads back after torn writes, segment
// rolls, compaction, a snapshot that replaced the log, and a data dir last
// written by a release that kept the entries in SQLite.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { EntryLog } from '../src/raft/entry-log.ts';
import { RaftStorage } from '../src/raft/storage.ts';
import type { Entry } from '../src/raft/types.ts';

function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-raftlog-'));
  // Retries: the log may still be zero-filling its next segment in the background.
  t.after(() => fs.rmSync(dir, { recursive: true, force: true, maxRetries: 20 }));
  return dir;
}

function entry(index: number, term: number, data = `v${index}.${term}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(data) };
}

function text(entries: readonly Entry[]): string[] {
  return entries.map((e) => `${e.index}@${e.term}:${new TextDecoder().decode(e.data)}`);
}

function reopen(dir: string): ReturnType<typeof EntryLog.open> {
  const opened = EntryLog.open(dir);
  opened.log.close();
  return opened;
}

function segments(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

test('entries come back after a restart, later ones replacing earlier ones from their index on', (t) => {
  const dir = tmpDir(t);
  const { log } = EntryLog.open(dir);
  log.write({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
  log.write({ entries: [entry(4, 1), entry(5, 1)] });
  log.write({ entries: [entry(3, 2), entry(4, 2)] }); // a new leader's entries replace 3..5
  log.close();
  const { replayed } = reopen(dir);
  assert.deepEqual(replayed.base, { index: 0, term: 0 });
  assert.deepEqual(text(replayed.entries), ['1@1:v1.1', '2@1:v2.1', '3@2:v3.2', '4@2:v4.2']);
});

test('a last record that ends in zero bytes (a no-op, a base, data ending in zeros) survives a restart', (t) => {
  const dir = tmpDir(t);
  const { log } = EntryLog.open(dir);
  log.write({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)] });
  // A leader's no-op has no data: its record ends with the term's high bytes, all zero.
  log.write({ entries: [{ index: 4, term: 2, type: 'normal', data: new Uint8Array(0) }] });
  log.close();
  let r = reopen(dir);
  assert.deepEqual(
    r.replayed.entries.map((e) => `${e.index}@${e.term}`),
    ['1@1', '2@1', '3@1', '4@2'],
  );
  const again = EntryLog.open(dir);
  again.log.write({ entries: [{ index: 5, term: 2, type: 'normal', data: new Uint8Array([7, 0, 0, 0]) }] });
  again.log.write({ base: { index: 3, term: 1 }, entries: [] }); // the log ends at 3 now
  again.log.close();
  r = reopen(dir);
  assert.deepEqual(
    r.replayed.entries.map((e) => `${e.index}@${e.term}`),
    ['1@1', '2@1', '3@1'],
  );
});

test('a torn last batch is dropped, and what it left behind never reappears after the next write', (t) => {
  const dir = tmpDir(t);
  const { log } = EntryLog.open(dir);
  log.write({ entries: [entry(1, 1), entry(2, 1)] });
  log.write({ entries: [entry(3, 1), entry(4, 1), entry(5, 1)] });
  log.close();
  // The crash tore the second batch: entry 4's bytes never reached the disk, entry 5's did.
  const [seg] = segments(dir);
  const file = path.join(dir, seg);
  const buf = fs.readFileSync(file);
  const at = buf.indexOf('v4.1');
  assert.ok(at > 0);
  buf.write('XXXX', at);
  fs.writeFileSync(file, buf);

  const first = EntryLog.open(dir);
  assert.deepEqual(text(first.replayed.entries), ['1@1:v1.1', '2@1:v2.1', '3@1:v3.1']);
  // The same size as the torn record, so that entry 5's intact bytes would follow it exactly had they been kept.
  first.log.write({ entries: [entry(4, 2)] });
  first.log.close();
  assert.deepEqual(text(reopen(dir).replayed.entries), ['1@1:v1.1', '2@1:v2.1', '3@1:v3.1', '4@2:v4.2']);
});

test('a damaged record in an older segment stops the node rather than losing entries silently', (t) => {
  const dir = tmpDir(t);
  const { log } = EntryLog.open(dir);
  const big = 'x'.repeat(1 << 20);
  for (let i = 1; i <= 6; i++) log.write({ entries: [entry(i, 1, big + i)] });
  log.close();
  const segs = segments(dir);
  assert.ok(segs.length >= 2, `expected the log to span segments, got ${segs.join(', ')}`);
  const file = path.join(dir, segs[0]);
  const buf = fs.readFileSync(file);
  buf[buf.indexOf('xxxx') + 100] = 0x79;
  fs.writeFileSync(file, buf);
  assert.throws(() => EntryLog.open(dir), /is corrupt at offset/);
});

test('segments roll over, and compaction deletes only those a snapshot covers', (t) => {
  const dir = tmpDir(t);
  const { log } = EntryLog.open(dir);
  const big = 'y'.repeat(256 << 10);
  for (let i = 1; i <= 40; i += 2) log.write({ entries: [entry(i, 1, big), entry(i + 1, 1, big)] });
  const before = segments(dir);
  assert.ok(before.length >= 3, `40 entries of 256 KiB should fill 3 segments of 4 MiB, got ${before.length}`);
  log.compact(30);
  const after = segments(dir);
  assert.ok(after.length < before.length, 'no segment was deleted');
  assert.equal(after.at(-1), before.at(-1));
  log.write({ entries: [entry(41, 2)] });
  log.close();
  const { replayed } = reopen(dir);
  // Replay starts at the oldest kept segment: at or before the snapshot, and continuous to the end.
  assert.ok(replayed.base.index <= 30 && replayed.base.index > 0, `base ${replayed.base.index}`);
  assert.equal(replayed.entries[0].index, replayed.base.index + 1);
  assert.deepEqual(
    replayed.entries.map((e) => e.index),
    Array.from({ length: 41 - replayed.base.index }, (_, i) => replayed.base.index + 1 + i),
  );
  assert.equal(replayed.entries.at(-1)!.term, 2);
});

test('a snapshot from the leader replaces the log, also across a restart', (t) => {
  const dir = tmpDir(t);
  const s = RaftStorage.open(dir);
  s.load();
  s.save({ entries: [entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1), entry(5, 1)], hardState: { term: 1, vote: 'a', commit: 2 } });
  const conf = { voters: ['a', 'b', 'c'], learners: [] };
  s.save({ snapshot: { meta: { index: 3, term: 2, conf }, data: new Uint8Array([7]) }, entries: [], hardState: { term: 2, vote: null, commit: 3 } });
  s.save({ entries: [entry(4, 2)] });
  s.close();
  const again = RaftStorage.open(dir);
  const d = again.load();
  again.close();
  assert.equal(d.snapshot?.meta.index, 3);
  assert.deepEqual(text(d.entries), ['4@2:v4.2']);
  assert.deepEqual(d.hardState, { term: 2, vote: null, commit: 3 });
});

test('a crash between storing a snapshot and telling the log: entries that do not continue the snapshot are dropped', (t) => {
  const dir = tmpDir(t);
  const s = RaftStorage.open(dir);
  s.load();
  s.save({ entries: [entry(1, 1), entry(2, 1), entry(3, 1)], hardState: { term: 1, vote: null, commit: 0 } });
  // As if only the SQLite half of a snapshot install (index 2, term 2) had reached the disk.
  s.compact({ meta: { index: 2, term: 2, conf: { voters: ['a'], learners: [] } }, data: new Uint8Array([1]) });
  s.close();
  let r = RaftStorage.open(dir);
  assert.deepEqual(r.load().entries, []);
  r.save({ entries: [entry(3, 2)] });
  r.close();
  r = RaftStorage.open(dir);
  const d = r.load();
  r.close();
  assert.deepEqual(text(d.entries), ['3@2:v3.2']);
});

test('the commit index is not stored past the entries on disk', (t) => {
  const dir = tmpDir(t);
  const s = RaftStorage.open(dir);
  s.load();
  s.save({ entries: [entry(1, 1)], hardState: { term: 1, vote: null, commit: 0 } });
  // A follower's first append of a new term: a new term and a commit index covering entries in the same Ready.
  s.save({ entries: [entry(2, 2), entry(3, 2)], hardState: { term: 2, vote: null, commit: 3 } });
  s.close();
  const db = new Database(path.join(dir, 'raft.db'), { readonly: true });
  const row = db.prepare('SELECT term, commit_index FROM hard_state').get() as { term: number; commit_index: number };
  db.close();
  assert.deepEqual(row, { term: 2, commit_index: 1 });
});

test('a data dir whose entries are in SQLite (releases before the EntryLog) moves them into the log', (t) => {
  const dir = tmpDir(t);
  const db = new Database(path.join(dir, 'raft.db'));
  db.exec(`CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL);
    CREATE TABLE hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT, commit_index INTEGER NOT NULL);
    CREATE TABLE snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, conf TEXT NOT NULL, data BLOB NOT NULL);`);
  db.prepare('INSERT INTO snapshot VALUES (1, 5, 1, ?, ?)').run(JSON.stringify({ voters: ['a'], learners: [] }), Buffer.from([1]));
  db.prepare('INSERT INTO hard_state VALUES (1, 2, NULL, 6)').run();
  const ins = db.prepare('INSERT INTO entries VALUES (?, ?, ?, ?)');
  for (const e of [entry(6, 1), entry(7, 2), entry(8, 2)]) ins.run(e.index, e.term, e.type, Buffer.from(e.data));
  db.close();

  for (let i = 0; i < 2; i++) {
    const s = RaftStorage.open(dir);
    const d = s.load();
    s.close();
    assert.deepEqual(text(d.entries), ['6@1:v6.1', '7@2:v7.2', '8@2:v8.2']);
    assert.deepEqual(d.hardState, { term: 2, vote: null, commit: 6 });
  }
  const check = new Database(path.join(dir, 'raft.db'), { readonly: true });
  const left = check.prepare('SELECT count(*) AS n FROM entries').get() as { n: number };
  check.close();
  assert.equal(left.n, 0);
});
