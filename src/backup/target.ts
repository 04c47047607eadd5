// Where backups are kept. A target is named by a URI: `dir:/path`, a
// directory (on a cluster of several nodes, storage every node mounts). Each
// backup is a folder of its parts and its manifest, so a cluster that never
// saw the one that made them can list and restore them.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../errors.ts';
import { commitFile } from '../fsync.ts';

export interface BackupTarget {
  readonly uri: string;
  /** Write an object from a stream; it appears whole or not at all. */
  put(key: string, from: Readable): Promise<void>;
  get(key: string): Readable;
  /** The keys under a prefix. */
  list(prefix: string): Promise<string[]>;
  /** Remove every object under a prefix; idempotent. */
  deletePrefix(prefix: string): Promise<void>;
  /** Whether the storage is only this node's own (a directory no other node mounts would die with the node). */
  readonly local: boolean;
}

/** A directory target: objects are files, written to a temporary name, fsynced and renamed into place. */
export class DirTarget implements BackupTarget {
  readonly local = true;
  constructor(readonly root: string) {}
  get uri(): string {
    return `dir:${this.root}`;
  }
  private file(key: string): string {
    const f = path.join(this.root, key);
    if (!f.startsWith(this.root + path.sep)) throw new Error(`backup object ${key} is outside ${this.root}`);
    return f;
  }
  async put(key: string, from: Readable): Promise<void> {
    const file = this.file(key);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.partial`;
    try {
      await pipeline(from, fs.createWriteStream(tmp));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    commitFile(tmp, file);
  }
  get(key: string): Readable {
    return fs.createReadStream(this.file(key));
  }
  list(prefix: string): Promise<string[]> {
    const base = path.join(this.root, prefix);
    if (!fs.existsSync(base)) return Promise.resolve([]);
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (!e.name.endsWith('.partial')) out.push(path.relative(this.root, p));
      }
    };
    walk(base);
    return Promise.resolve(out.sort());
  }
  deletePrefix(prefix: string): Promise<void> {
    fs.rmSync(path.join(this.root, prefix), { recursive: true, force: true });
    return Promise.resolve();
  }
}

/** The target a URI names; throws, naming what a target looks like, on anything else. */
export function openTarget(uri: string): BackupTarget {
  if (uri.startsWith('dir:')) {
    const p = uri.slice('dir:'.length);
    if (!path.isAbsolute(p)) throw new UserError(`backup target ${uri}: a directory target is dir:/absolute/path`);
    return new DirTarget(path.normalize(p));
  }
  const scheme = /^([a-z0-9+.-]+):/i.exec(uri)?.[1];
  throw new UserError(
    `backup target ${uri}: ${scheme ? `no target of scheme ${scheme}:` : 'not a target URI'}; give dir:/path (storage every node mounts, on a cluster of several nodes)${scheme === 's3' ? '. S3 buckets are not supported yet' : ''}`,
  );
}
