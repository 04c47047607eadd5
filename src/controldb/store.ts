// The controldb's state machine: a key-value store with etcd's revision
// semantics, kept in SQLite and changed only by applying Raft log entries.
// Each entry is applied in one SQLite transaction that also records its
// index, so after a crash the store knows exactly which entries to re-apply.
import fs from 'node:fs';
import type { Entry } from '../raft/types.ts';
import { openDatabase, type DB } from '../sqlite.ts';
import type {
  Command,
  CommandResult,
  Compare,
  KeyValue,
  RangeRequest,
  RangeResponse,
  RequestOp,
  ResponseOp,
  TxnRequest,
  TxnResponse,
  WatchEvent,
} from './types.ts';

export class CompactedError extends Error {
  constructor(readonly compactRevision: number) {
    super(`revision ${compactRevision} and older have been compacted; watch from a newer revision`);
    this.name = 'CompactedError';
  }
}

export interface StoreOptions {
  /** Watch events kept for this many revisions. */
  eventRetention?: number;
  /** Request ids remembered for this many log entries, for retried requests. */
  requestRetention?: number;
}

interface KvRow {
  key: string;
  value: string;
  create_rev: number;
  mod_rev: number;
  version: number;
  lease: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS kv (
  key TEXT PRIMARY KEY, value TEXT NOT NULL, create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_lease ON kv (lease) WHERE lease != 0;
CREATE TABLE IF NOT EXISTS events (
  rev INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
  create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,
  PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS requests (id TEXT PRIMARY KEY, applied_index INTEGER NOT NULL, result TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS requests_index ON requests (applied_index);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('revision', 1), ('compact_revision', 0), ('applied_index', 0), ('applied_term', 0);
`;

function toKv(r: KvRow): KeyValue {
  return { key: r.key, value: r.value, create_revision: r.create_rev, mod_revision: r.mod_rev, version: r.version, lease: r.lease };
}

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: string): string {
  return prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
}

export type EventListener = (revision: number, events: WatchEvent[]) => void;

export class KvStore {
  private db!: DB;
  private stmts!: ReturnType<KvStore['prepare']>;
  private readonly listeners = new Set<EventListener>();
  /** How many snapshots replaced the state: a restore changes keys without events, so caches of them start over. */
  restores = 0;
  private readonly eventRetention: number;
  private readonly requestRetention: number;
  private rev = 1;

  constructor(
    private readonly file: string,
    opts: StoreOptions = {},
  ) {
    this.eventRetention = opts.eventRetention ?? 100_000;
    this.requestRetention = opts.requestRetention ?? 100_000;
    this.open();
  }

  private open(): void {
    this.db = openDatabase(this.file);
    // The Raft log is the durable record and is fsynced; this file may lose its
    // last transactions on power loss, and they are re-applied from the log.
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(SCHEMA);
    this.stmts = this.prepare();
    this.rev = this.meta('revision');
  }

  private prepare() {
    const db = this.db;
    return {
      get: db.prepare<[string], KvRow>('SELECT * FROM kv WHERE key = ?'),
      rangeAll: db.prepare<[string, string, number], KvRow>('SELECT * FROM kv WHERE key >= ? AND key < ? ORDER BY key LIMIT ?'),
      count: db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM kv WHERE key >= ? AND key < ?'),
      upsert: db.prepare(
        'INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) VALUES (@key, @value, @create_rev, @mod_rev, @version, @lease) ' +
          'ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, version = excluded.version, lease = excluded.lease',
      ),
      del: db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      event: db.prepare(
        'INSERT INTO events (rev, seq, type, key, value, create_rev, mod_rev, version, lease) VALUES (@rev, @seq, @type, @key, @value, @create_rev, @mod_rev, @version, @lease)',
      ),
      eventsFrom: db.prepare<[number, string, string], KvRow & { rev: number; type: 'put' | 'delete' }>(
        'SELECT * FROM events WHERE rev >= ? AND key >= ? AND key < ? ORDER BY rev, seq',
      ),
      pruneEvents: db.prepare<[number]>('DELETE FROM events WHERE rev < ?'),
      getMeta: db.prepare<[string], { v: number }>('SELECT v FROM meta WHERE k = ?'),
      setMeta: db.prepare<[number, string]>('UPDATE meta SET v = ? WHERE k = ?'),
      leaseGet: db.prepare<[number], { id: number; ttl: number }>('SELECT * FROM leases WHERE id = ?'),
      leaseAll: db.prepare<[], { id: number; ttl: number }>('SELECT * FROM leases ORDER BY id'),
      leasePut: db.prepare<[number, number]>('INSERT OR REPLACE INTO leases (id, ttl) VALUES (?, ?)'),
      leaseDel: db.prepare<[number]>('DELETE FROM leases WHERE id = ?'),
      leaseKeys: db.prepare<[number], KvRow>('SELECT * FROM kv WHERE lease = ? ORDER BY key'),
      requestGet: db.prepare<[string], { result: string }>('SELECT result FROM requests WHERE id = ?'),
      requestPut: db.prepare<[string, number, string]>('INSERT INTO requests (id, applied_index, result) VALUES (?, ?, ?)'),
      pruneRequests: db.prepare<[number]>('DELETE FROM requests WHERE applied_index < ?'),
    };
  }

  private meta(k: string): number {
    return this.stmts.getMeta.get(k)!.v;
  }

  // ------------------------------------------------------------ reads

  revision(): number {
    return this.rev;
  }

  appliedIndex(): number {
    return this.meta('applied_index');
  }

  appliedTerm(): number {
    return this.meta('applied_term');
  }

  /** Remove keys outside the log (only for building a restored cluster's first snapshot). */
  deletePrefix(prefix: string): void {
    this.db.prepare('DELETE FROM kv WHERE key >= ? AND key < ?').run(prefix, prefixEnd(prefix));
  }

  compactRevision(): number {
    return this.meta('compact_revision');
  }

  get(key: string): KeyValue | undefined {
    const r = this.stmts.get.get(key);
    return r ? toKv(r) : undefined;
  }

  range(req: RangeRequest): RangeResponse {
    if (!req.prefix) {
      const kv = this.get(req.key);
      return { kvs: kv ? [kv] : [], count: kv ? 1 : 0, more: false };
    }
    const end = prefixEnd(req.key);
    const limit = req.limit > 0 ? req.limit : -1;
    const kvs = this.stmts.rangeAll.all(req.key, end, limit).map(toKv);
    const count = limit > 0 && kvs.length === limit ? this.stmts.count.get(req.key, end)!.n : kvs.length;
    return { kvs, count, more: count > kvs.length };
  }

  leases(): { id: number; ttl: number }[] {
    return this.stmts.leaseAll.all();
  }

  lease(id: number): { id: number; ttl: number } | undefined {
    return this.stmts.leaseGet.get(id);
  }

  leaseKeys(id: number): string[] {
    return this.stmts.leaseKeys.all(id).map((r) => r.key);
  }

  /** Events at or after `fromRevision` on a key or prefix, oldest first. */
  events(fromRevision: number, key: string, prefix: boolean): { revision: number; event: WatchEvent }[] {
    const compacted = this.compactRevision();
    if (fromRevision > 0 && fromRevision <= compacted) throw new CompactedError(compacted);
    const end = prefix ? prefixEnd(key) : key + '\u0000';
    return this.stmts.eventsFrom.all(Math.max(fromRevision, 1), key, end).map((r) => ({
      revision: r.rev,
      event: { type: r.type, kv: toKv(r) },
    }));
  }

  onEvents(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ------------------------------------------------------------ applying the log

  /**
   * Apply committed entries in one transaction that also records the last
   * one's index; returns each command's result (undefined for no-ops and
   * configuration entries). Watchers hear of the changes after the commit.
   */
  apply(entries: readonly Entry[]): (CommandResult | undefined)[] {
    if (entries.length === 0) return [];
    const changes: { revision: number; events: WatchEvent[] }[] = [];
    const last = entries[entries.length - 1];
    const results = this.db.transaction(() => {
      const out = entries.map((entry): CommandResult | undefined => {
        if (entry.type !== 'normal' || entry.data.length === 0) return undefined;
        const cmd = JSON.parse(Buffer.from(entry.data).toString('utf8')) as Command;
        const r = this.execute(cmd, entry.index);
        if (r.events.length > 0) changes.push({ revision: this.rev, events: r.events });
        if (entry.index % 1000 === 0) this.prune(entry.index);
        return r.result;
      });
      // The changes and the index they reach commit together: a crash keeps both or neither.
      this.stmts.setMeta.run(last.index, 'applied_index');
      this.stmts.setMeta.run(last.term, 'applied_term');
      return out;
    })();
    for (const c of changes) for (const l of this.listeners) l(c.revision, c.events);
    return results;
  }

  private execute(cmd: Command, index: number): { result: CommandResult; events: WatchEvent[] } {
    switch (cmd.op) {
      case 'txn': {
        const id = cmd.txn.request_id;
        if (id) {
          const seen = this.stmts.requestGet.get(id);
          if (seen) return { result: JSON.parse(seen.result) as TxnResponse, events: [] };
        }
        const out = this.txn(cmd.txn);
        if (id) this.stmts.requestPut.run(id, index, JSON.stringify(out.result));
        return out;
      }
      case 'lease_grant':
        this.stmts.leasePut.run(cmd.id, cmd.ttl);
        return { result: { revision: this.rev }, events: [] };
      case 'lease_revoke': {
        if (!this.stmts.leaseGet.get(cmd.id)) return { result: { revision: this.rev }, events: [] };
        const keys = this.stmts.leaseKeys.all(cmd.id);
        this.stmts.leaseDel.run(cmd.id);
        if (keys.length === 0) return { result: { revision: this.rev }, events: [] };
        const rev = this.bump();
        const events = keys.map((k, seq) => this.remove(k, rev, seq));
        return { result: { revision: rev }, events };
      }
      case 'compact': {
        if (cmd.revision > this.compactRevision() && cmd.revision <= this.rev) {
          this.stmts.pruneEvents.run(cmd.revision + 1);
          this.stmts.setMeta.run(cmd.revision, 'compact_revision');
        }
        return { result: { revision: this.rev }, events: [] };
      }
    }
  }

  private txn(t: TxnRequest): { result: TxnResponse; events: WatchEvent[] } {
    const succeeded = t.compare.every((c) => this.holds(c));
    const ops = succeeded ? t.success : t.failure;
    const writes = ops.some((op) => !('range' in op));
    // A transaction that writes moves the store to one new revision, shared by all its writes.
    const rev = writes ? this.bump() : this.rev;
    const events: WatchEvent[] = [];
    const responses = ops.map((op) => this.op(op, rev, events));
    return { result: { succeeded, revision: rev, responses }, events };
  }

  private op(op: RequestOp, rev: number, events: WatchEvent[]): ResponseOp {
    if ('range' in op) return { range: this.range(op.range) };
    if ('put' in op) {
      const { key, value, lease = 0 } = op.put;
      if (lease !== 0 && !this.stmts.leaseGet.get(lease)) {
        // Checked before proposing too; a lease that expired in between makes the put a no-op.
        return { put: {} };
      }
      const prev = this.stmts.get.get(key);
      const kv: KvRow = {
        key,
        value,
        create_rev: prev ? prev.create_rev : rev,
        mod_rev: rev,
        version: prev ? prev.version + 1 : 1,
        lease,
      };
      this.stmts.upsert.run(kv);
      this.stmts.event.run({ ...kv, rev, seq: events.length, type: 'put' });
      events.push({ type: 'put', kv: toKv(kv) });
      return { put: prev ? { prev_kv: toKv(prev) } : {} };
    }
    const victims = op.delete.prefix
      ? this.stmts.rangeAll.all(op.delete.key, prefixEnd(op.delete.key), -1)
      : [this.stmts.get.get(op.delete.key)].filter((r): r is KvRow => r !== undefined);
    for (const v of victims) events.push(this.remove(v, rev, events.length));
    return { delete: { deleted: victims.length } };
  }

  private remove(row: KvRow, rev: number, seq: number): WatchEvent {
    this.stmts.del.run(row.key);
    const tomb = { ...row, value: '', mod_rev: rev, version: 0 };
    this.stmts.event.run({ ...tomb, rev, seq, type: 'delete' });
    return { type: 'delete', kv: toKv(tomb) };
  }

  private holds(c: Compare): boolean {
    const kv = this.stmts.get.get(c.key);
    let actual: string | number | boolean;
    switch (c.target) {
      case 'exists':
        actual = kv !== undefined;
        break;
      case 'value':
        if (!kv) return c.op === '!=';
        actual = kv.value;
        break;
      case 'version':
        actual = kv?.version ?? 0;
        break;
      case 'mod_revision':
        actual = kv?.mod_rev ?? 0;
        break;
      case 'create_revision':
        actual = kv?.create_rev ?? 0;
        break;
    }
    switch (c.op) {
      case '=':
        return actual === c.value;
      case '!=':
        return actual !== c.value;
      case '<':
        return actual < c.value;
      case '>':
        return actual > c.value;
    }
  }

  private bump(): number {
    this.rev++;
    this.stmts.setMeta.run(this.rev, 'revision');
    return this.rev;
  }

  private prune(index: number): void {
    this.stmts.pruneRequests.run(index - this.requestRetention);
    const keepFrom = this.rev - this.eventRetention;
    if (keepFrom > this.compactRevision()) {
      this.stmts.pruneEvents.run(keepFrom + 1);
      this.stmts.setMeta.run(keepFrom, 'compact_revision');
    }
  }

  // ------------------------------------------------------------ snapshots

  /** The whole state machine as one SQLite image. */
  snapshot(): Uint8Array {
    return this.db.serialize();
  }

  /** Replace the state with a snapshot's image (from InstallSnapshot or `snapshot restore`). */
  restore(image: Uint8Array): void {
    this.db.close();
    const tmp = `${this.file}.restore`;
    fs.writeFileSync(tmp, image);
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    for (const suffix of ['-wal', '-shm']) fs.rmSync(this.file + suffix, { force: true });
    fs.renameSync(tmp, this.file);
    this.open();
    this.restores++;
  }

  close(): void {
    this.db.close();
  }
}
