// The data dir holds everything a node keeps: its identity, the raft log, the
// controldb and local volumes. One daemon at a time may own it.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError, errorMessage } from './errors.ts';
import { openDatabase, type DB } from './sqlite.ts';

export interface DataDir {
  path: string;
  nodeId: string;
  /** Held open for the life of the daemon: its exclusive lock keeps a second daemon out. */
  lock: DB;
}

export function openDataDir(dir: string): DataDir {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.R_OK | fs.constants.X_OK);
  } catch (err) {
    throw new UserError(`data dir ${dir} is not usable: ${errorMessage(err)}`);
  }
  if (!fs.statSync(dir).isDirectory()) throw new UserError(`data dir ${dir} is not a directory`);

  let lock: DB;
  try {
    lock = openDatabase(path.join(dir, 'node.db'));
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('CREATE TABLE IF NOT EXISTS node (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    // In exclusive mode the first write takes the lock and keeps it until the
    // connection closes; the kernel drops it if the process dies.
    lock.exec("INSERT OR IGNORE INTO node (key, value) VALUES ('created', datetime('now'))");
  } catch (err) {
    const msg = errorMessage(err);
    if (/locked|busy/i.test(msg)) throw new UserError(`data dir ${dir} is in use by another firecampd`);
    throw new UserError(`data dir ${dir}: cannot open node.db: ${msg}`);
  }

  const get = (key: string) => (lock.prepare('SELECT value FROM node WHERE key = ?').get(key) as { value: string } | undefined)?.value;
  const set = (key: string, value: string) => lock.prepare('INSERT OR REPLACE INTO node (key, value) VALUES (?, ?)').run(key, value);

  let nodeId = get('node_id');
  if (!nodeId) {
    nodeId = randomBytes(8).toString('hex');
    set('node_id', nodeId);
  }
  return { path: dir, nodeId, lock };
}
