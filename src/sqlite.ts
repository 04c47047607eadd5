// One way to open SQLite: durable settings, and the native addon that the
// single-binary build carries inside itself (see src/native.ts).
import Database from 'better-sqlite3';
import { nativeSqliteAddon } from './native.ts';

export type DB = Database.Database;

export interface OpenOptions {
  readonly?: boolean;
}

export function openDatabase(file: string, opts: OpenOptions = {}): DB {
  const addon = nativeSqliteAddon();
  const db = new Database(file, {
    readonly: opts.readonly ?? false,
    // The typings predate addon objects; better-sqlite3 accepts one.
    ...(addon ? { nativeBinding: addon as unknown as string } : {}),
  });
  if (!opts.readonly) {
    db.pragma('journal_mode = WAL');
    // FULL: a commit is fsynced before it returns, so nothing acknowledged is lost on power failure.
    db.pragma('synchronous = FULL');
  }
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  return db;
}
