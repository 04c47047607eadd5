// Durable Raft state in SQLite: the log, the hard state (term, vote, commit)
// and the latest snapshot. Every save is one transaction, fsynced before it
// returns (synchronous=FULL), so nothing is acknowledged or voted before it
// is on disk.
import { openDatabase, type DB } from '../sqlite.ts';
import { encodeConf, type ConfState, type DurableState, type Entry, type HardState, type Ready, type Snapshot } from './types.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hard_state (id INTEGER PRIMARY KEY CHECK (id = 1), term INTEGER NOT NULL, vote TEXT, commit_index INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), idx INTEGER NOT NULL, term INTEGER NOT NULL, conf TEXT NOT NULL, data BLOB NOT NULL);
`;

export class RaftStorage {
  private readonly db: DB;
  private readonly stmts;
  private saved: HardState | undefined;

  private constructor(file: string) {
    this.db = openDatabase(file);
    this.db.exec(SCHEMA);
    const db = this.db;
    this.stmts = {
      insert: db.prepare<[number, number, string, Uint8Array]>('INSERT INTO entries (idx, term, type, data) VALUES (?, ?, ?, ?)'),
      truncateFrom: db.prepare<[number]>('DELETE FROM entries WHERE idx >= ?'),
      dropThrough: db.prepare<[number]>('DELETE FROM entries WHERE idx <= ?'),
      all: db.prepare<[], { idx: number; term: number; type: Entry['type']; data: Buffer }>('SELECT * FROM entries ORDER BY idx'),
      hard: db.prepare<[number, string | null, number]>(
        'INSERT INTO hard_state (id, term, vote, commit_index) VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET term = excluded.term, vote = excluded.vote, commit_index = excluded.commit_index',
      ),
      getHard: db.prepare<[], { term: number; vote: string | null; commit_index: number }>('SELECT * FROM hard_state WHERE id = 1'),
      snap: db.prepare<[number, number, string, Uint8Array]>(
        'INSERT INTO snapshot (id, idx, term, conf, data) VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET idx = excluded.idx, term = excluded.term, conf = excluded.conf, data = excluded.data',
      ),
      getSnap: db.prepare<[], { idx: number; term: number; conf: string; data: Buffer }>('SELECT * FROM snapshot WHERE id = 1'),
    };
  }

  static open(file: string): RaftStorage {
    return new RaftStorage(file);
  }

  isEmpty(): boolean {
    return !this.stmts.getHard.get() && !this.stmts.getSnap.get() && this.stmts.all.all().length === 0;
  }

  snapshot(): Snapshot | null {
    const s = this.stmts.getSnap.get();
    return s ? { meta: { index: s.idx, term: s.term, conf: JSON.parse(s.conf) as ConfState }, data: new Uint8Array(s.data) } : null;
  }

  load(): DurableState {
    const h = this.stmts.getHard.get();
    if (h) this.saved = { term: h.term, vote: h.vote, commit: h.commit_index };
    const snapshot = this.snapshot();
    const entries: Entry[] = this.stmts.all
      .all()
      .filter((e) => e.idx > (snapshot?.meta.index ?? 0))
      .map((e) => ({ index: e.idx, term: e.term, type: e.type, data: new Uint8Array(e.data) }));
    const hardState: HardState = h ? { term: h.term, vote: h.vote, commit: h.commit_index } : { term: 0, vote: null, commit: 0 };
    return { hardState, snapshot, entries };
  }

  /**
   * Persist what a Ready asks for, in one transaction, fsynced. A Ready that only moves the commit index is not written
   * at all: Raft needs no durable commit index (a restarted node learns it again from the leader, and the state
   * machine's own applied index says what was applied; see RaftLog), so it rides along with the next write of entries,
   * term or vote. Writing it alone cost the leader a SQLite transaction between a follower's ack and the answer.
   */
  save(rd: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>): void {
    if (!rd.hardState && rd.entries.length === 0 && !rd.snapshot) return;
    const prev = this.saved;
    const commitOnly =
      rd.entries.length === 0 && !rd.snapshot && !!prev && !!rd.hardState && prev.term === rd.hardState.term && prev.vote === rd.hardState.vote;
    if (commitOnly) return;
    this.write(rd);
    if (rd.hardState) this.saved = rd.hardState;
  }

  private write(rd: Pick<Ready, 'hardState' | 'entries' | 'snapshot'>): void {
    this.db.transaction(() => {
      if (rd.snapshot) {
        this.putSnapshot(rd.snapshot);
        this.stmts.truncateFrom.run(0); // a received snapshot replaces the whole log
      }
      if (rd.entries.length > 0) {
        this.stmts.truncateFrom.run(rd.entries[0].index);
        for (const e of rd.entries) this.stmts.insert.run(e.index, e.term, e.type, e.data);
      }
      if (rd.hardState) this.stmts.hard.run(rd.hardState.term, rd.hardState.vote, rd.hardState.commit);
    })();
  }

  /** The state machine took a snapshot: keep it and drop the entries it covers. */
  compact(snapshot: Snapshot): void {
    this.db.transaction(() => {
      this.putSnapshot(snapshot);
      this.stmts.dropThrough.run(snapshot.meta.index);
    })();
  }

  /** A new cluster's first entry: its initial configuration, committed by definition. */
  bootstrap(conf: ConfState): void {
    this.save({
      entries: [{ index: 1, term: 1, type: 'config', data: encodeConf(conf) }],
      hardState: { term: 1, vote: null, commit: 1 },
    });
  }

  private putSnapshot(s: Snapshot): void {
    this.stmts.snap.run(s.meta.index, s.meta.term, JSON.stringify(s.meta.conf), s.data);
  }

  close(): void {
    this.db.close();
  }
}
