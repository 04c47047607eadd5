// Durable Raft state. The entries live in an EntryLog of our own (raft-log/):
// they are the write every commit waits for. The hard state (term, vote) and
// the latest snapshot live in SQLite (raft.db, synchronous=FULL). Every save
// is on disk before it returns, so nothing is acknowledged or voted before it
// is durable.
import path from 'node:path';
import { openDatabase, type DB } from '../sqlite.ts';
import { EntryLog, termIn, type LogPoint, type ReplayedLog } from './entry-log.ts';
import { encodeConf, type ConfState, type DurableState, type Entry, type HardState, type Ready, type Snapshot } from './types.ts';

// `entries` is where releases before the EntryLog kept the log; open() moves what it still holds into the EntryLog.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT, commit_index INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, conf TEXT NOT NULL, data BLOB NOT NULL);
`;

export class RaftStorage {
  private readonly db: DB;
  private readonly stmts;
  private log: EntryLog;
  /**
   * What the log held when it was opened, until load() hands it on (the entries then belong to the Raft core). Null once
   * anything was written since: load() must read the log again.
   */
  private replayed: ReplayedLog | null;
  private saved: HardState | undefined;

  private constructor(private readonly dir: string) {
    this.db = openDatabase(path.join(dir, 'raft.db'));
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmts = {
      legacyEntries: db.prepare<[], { idx: number; term: number; type: Entry['type']; data: Buffer }>('SELECT * FROM entries ORDER BY idx'),
      dropLegacyEntries: db.prepare('DELETE FROM entries'),
      hard: db.prepare<[number, string | null, number]>(
        'INSERT INTO hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET term = excluded.term, vote = excluded.vote, commit_index = excluded.commit_index',
      ),
      getHard: db.prepare<[], { term: number; vote: string | null; commit_index: number }>('SELECT * FROM hard_state WHERE id = 1'),
      snap: db.prepare<[number, number, string, Uint8Array]>(
        'INSERT INTO snapshot (id, idx, term, conf, data) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET idx = excluded.idx, term = excluded.term, conf = excluded.conf, data = excluded.data',
      ),
      getSnap: db.prepare<[], { idx: number; term: number; conf: string; data: Buffer }>('SELECT * FROM snapshot WHERE id = 1'),
    };
    ({ log: this.log, replayed: this.replayed } = EntryLog.open(this.logDir()));
    this.moveLegacyEntries();
  }

  /** The node's Raft state in `dir`: raft.db and raft-log/. */
  static open(dir: string): RaftStorage {
    return new RaftStorage(dir);
  }

  isEmpty(): boolean {
    return !this.stmts.getHard.get() && !this.stmts.getSnap.get() && this.log.lastIndex() === 0;
  }

  snapshot(): Snapshot | null {
    const s = this.stmts.getSnap.get();
    return s ? { meta: { index: s.idx, term: s.term, conf: JSON.parse(s.conf) as ConfState }, data: new Uint8Array(s.data) } : null;
  }

  /**
   * What the node starts from. The entries are those after the snapshot, if the log holds the snapshot's own entry
   * (or begins right at it). Otherwise the snapshot replaced the log, as a leader's snapshot does, and the node crashed
   * before the log said so: none of its entries belong after the snapshot, and the log is told so now.
   */
  load(): DurableState {
    const h = this.stmts.getHard.get();
    if (h) this.saved = { term: h.term, vote: h.vote, commit: h.commit_index };
    const snapshot = this.snapshot();
    const at: LogPoint = snapshot ? { index: snapshot.meta.index, term: snapshot.meta.term } : { index: 0, term: 0 };
    const replayed = this.replayed ?? this.reopenLog(); // what is on disk now, bootstrap's entry included
    this.replayed = null;
    let entries: readonly Entry[];
    if (at.index >= replayed.base.index && termIn(replayed, at.index) === at.term) {
      entries = replayed.entries.slice(at.index - replayed.base.index);
    } else {
      this.writeLog({ base: at, entries: [] });
      entries = [];
    }
    const hardState: HardState = h ? { term: h.term, vote: h.vote, commit: h.commit_index } : { term: 0, vote: null, commit: 0 };
    return { hardState, snapshot, entries };
  }

  /**
   * Persist what a Ready asks for. SQLite is written only when the snapshot, the term or the vote changed: the commit
   * index alone is not worth a write, as Raft needs none durable (a restarted node learns it again from the leader, and
   * the state machine's own applied index says what was applied; see RaftLog). When it is written, it is capped at what
   * the log already holds, so that a crash before the entries are on disk cannot leave it pointing past them.
   */
  save(rd: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>): void {
    const hs = rd.hardState;
    const prev = this.saved;
    const termOrVote = !!hs && (!prev || prev.term !== hs.term || prev.vote !== hs.vote);
    if (rd.snapshot || termOrVote) {
      this.db.transaction(() => {
        if (rd.snapshot) this.putSnapshot(rd.snapshot);
        if (hs) this.stmts.hard.run(hs.term, hs.vote, Math.min(hs.commit, this.log.lastIndex()));
      })();
    }
    if (hs) this.saved = hs;
    const meta = rd.snapshot?.meta;
    this.writeLog({ base: meta && { index: meta.index, term: meta.term }, entries: rd.entries });
  }

  /** The state machine took a snapshot: keep it, then drop the log segments it covers. */
  compact(snapshot: Snapshot): void {
    this.putSnapshot(snapshot);
    this.log.compact(snapshot.meta.index);
  }

  /** A new cluster's first entry: its initial configuration, committed by definition. */
  bootstrap(conf: ConfState): void {
    this.writeLog({ entries: [{ index: 1, term: 1, type: 'config', data: encodeConf(conf) }] });
    this.save({ entries: [], hardState: { term: 1, vote: null, commit: 1 } });
  }

  close(): void {
    this.log.close();
    this.db.close();
  }

  private putSnapshot(s: Snapshot): void {
    this.stmts.snap.run(s.meta.index, s.meta.term, JSON.stringify(s.meta.conf), s.data);
  }

  private logDir(): string {
    return path.join(this.dir, 'raft-log');
  }

  /**
   * A node last run by a release that kept its entries in SQLite: write them to the EntryLog, then delete them. A crash
   * in between repeats the move, which is harmless (each entry replaces the same one).
   */
  private moveLegacyEntries(): void {
    const legacy = this.stmts.legacyEntries.all();
    if (legacy.length === 0) return;
    const snap = this.stmts.getSnap.get();
    const rows = legacy.filter((e) => e.idx > (snap?.idx ?? 0));
    const base = rows.length > 0 && rows[0].idx === 1 ? { index: 0, term: 0 } : { index: snap?.idx ?? 0, term: snap?.term ?? 0 };
    this.writeLog({ base, entries: rows.map((e) => ({ index: e.idx, term: e.term, type: e.type, data: new Uint8Array(e.data) })) });
    this.stmts.dropLegacyEntries.run();
  }

  private writeLog(batch: Parameters<EntryLog['write']>[0]): void {
    if (!batch.base && batch.entries.length === 0) return;
    this.replayed = null;
    this.log.write(batch);
  }

  private reopenLog(): ReplayedLog {
    this.log.close();
    let replayed: ReplayedLog;
    ({ log: this.log, replayed } = EntryLog.open(this.logDir()));
    return replayed;
  }
}
