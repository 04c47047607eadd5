// The Raft log's entries on disk, in files of our own rather than in SQLite:
// the one write every commit waits for, on the leader and on a follower. A
// SQLite commit costs a WAL append, its index and an fsync; here a batch of
// entries is one write into space allocated beforehand, then fdatasync, which
// then has no file metadata to flush (about half the time on this class of disk; see
// docs/performance.md).
//
// The log is a series of segments, each SEGMENT_BYTES of zeros when created.
// Records follow each other from offset 0; a zero length marks the end:
//
//   u32 body length | u32 crc32(body) | body = u8 kind | u48 index | u48 term | data
//
// Kinds:
//   - 'normal' and 'config': an entry. It replaces whatever the log held at
//     its index and after, as Ready.entries does: truncation is an append.
//   - 'base' (index, term): the log ends at (index, term) here. Every segment
//     opens with one, so that the oldest segments can be deleted once a
//     snapshot covers them. It is also written when a snapshot replaces the log.
//
// A crash can tear only the records of the last batch, which nobody was told
// about: replay stops at the first record whose length or CRC is wrong and
// zeroes what follows, so the next batch cannot run into stale bytes.
import fs from 'node:fs';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import type { Entry } from './types.ts';
import { fsyncPath } from '../fsync.ts';

const SEGMENT_BYTES = 4 << 20;
const HEAD = 8;
const FIXED = 13;
const KIND = { normal: 1, config: 2, base: 3 } as const;
const SEGMENT_NAME = /^([0-9a-f]{16})\.seg$/;
const SPARE = 'spare.tmp';
/** Segments are zero-filled, checked and zeroed through this one buffer rather than a zeroed copy of a whole segment. */
const ZEROS = Buffer.alloc(64 << 10);

export interface LogPoint {
  readonly index: number;
  readonly term: number;
}

/** What replay found: the log's entries continue `base` without a gap. */
export interface ReplayedLog {
  readonly base: LogPoint;
  readonly entries: readonly Entry[];
}

interface Segment {
  readonly seq: number;
  /** Where the log stood when the segment began; unknown only for a new, still empty last segment. */
  base: LogPoint | null;
}

/** The term of the entry at `index` in a replayed log (its base's term at the base), or undefined if it holds none there. */
export function termIn(log: ReplayedLog, index: number): number | undefined {
  if (index === log.base.index) return log.base.term;
  return log.entries[index - log.base.index - 1]?.term;
}

export class EntryLog {
  private segments: Segment[] = [];
  private fd = -1;
  private offset = 0;
  /** The log's last point after everything written so far. */
  private last: LogPoint;
  private spareReady = false;
  private preparing = false;
  private closed = false;

  private constructor(
    private readonly dir: string,
    replayed: ReplayedLog,
  ) {
    const tail = replayed.entries.at(-1);
    this.last = tail ? { index: tail.index, term: tail.term } : replayed.base;
  }

  /** Open (creating if need be) the log in `dir` and replay it. */
  static open(dir: string): { log: EntryLog; replayed: ReplayedLog } {
    fs.mkdirSync(dir, { recursive: true });
    fs.rmSync(path.join(dir, SPARE), { force: true }); // possibly half written
    const seqs = fs
      .readdirSync(dir)
      .map((name) => SEGMENT_NAME.exec(name))
      .filter((m) => m !== null)
      .map((m) => parseInt(m[1], 16))
      .sort((a, b) => a - b);
    const replay = new Replay();
    const segments: Segment[] = [];
    let tailOffset = 0;
    for (const [i, seq] of seqs.entries()) {
      const file = path.join(dir, segmentName(seq));
      const buf = fs.readFileSync(file);
      const { end, torn, base } = replay.segment(buf, file);
      segments.push({ seq, base });
      const isLast = i === seqs.length - 1;
      if (torn && !isLast) throw new Error(`raft log: ${file} is corrupt at offset ${end}`);
      if (isLast) {
        tailOffset = end;
        if (torn) zeroFrom(file, end, buf.length);
      }
    }
    const replayed = replay.result();
    const log = new EntryLog(dir, replayed);
    log.segments = segments;
    if (segments.length > 0) {
      log.fd = fs.openSync(path.join(dir, segmentName(segments.at(-1)!.seq)), 'r+');
      log.offset = tailOffset;
    }
    return { log, replayed };
  }

  lastIndex(): number {
    return this.last.index;
  }

  /**
   * Make durable, in order: a new base (when a snapshot replaced the log), then entries, each replacing what the log held
   * from its index on. One write and one fdatasync; returns once both are done.
   */
  write(batch: { base?: LogPoint; entries: readonly Entry[] }): void {
    if (this.closed) throw new Error('raft log: closed');
    if (!batch.base && batch.entries.length === 0) return;
    const records: Buffer[] = [];
    let next = this.last;
    if (batch.base) {
      records.push(record(KIND.base, batch.base.index, batch.base.term));
      next = batch.base;
    }
    for (const e of batch.entries) {
      if (e.index > next.index + 1) throw new Error(`raft log: entry ${e.index} does not continue the log at ${next.index}`);
      records.push(record(KIND[e.type], e.index, e.term, e.data));
      next = e;
    }
    let bytes = records.reduce((n, r) => n + r.length, 0);
    if (this.fd < 0 || (this.offset > 0 && this.offset + bytes > SEGMENT_BYTES)) this.roll();
    if (this.offset === 0) {
      const head = record(KIND.base, this.last.index, this.last.term);
      records.unshift(head);
      bytes += head.length;
      this.segments.at(-1)!.base = this.last;
    }
    const buf = records.length === 1 ? records[0] : Buffer.concat(records, bytes);
    fs.writeSync(this.fd, buf, 0, buf.length, this.offset);
    fs.fdatasyncSync(this.fd);
    this.offset += buf.length;
    this.last = { index: next.index, term: next.term };
    if (this.offset > SEGMENT_BYTES / 2) this.prepareSpare();
  }

  /** A snapshot covers the log through `index`: delete the segments that only hold what comes before it. */
  compact(index: number): void {
    let keepFrom = 0;
    for (let i = 0; i < this.segments.length; i++) {
      const base = this.segments[i].base;
      if (base && base.index <= index) keepFrom = i;
    }
    if (keepFrom === 0) return;
    for (const s of this.segments.slice(0, keepFrom)) fs.rmSync(path.join(this.dir, segmentName(s.seq)), { force: true });
    this.segments = this.segments.slice(keepFrom);
    fsyncPath(this.dir);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  /** Start the next segment: the spare prepared in the background if it is ready, else one made now. */
  private roll(): void {
    const seq = (this.segments.at(-1)?.seq ?? 0) + 1;
    const file = path.join(this.dir, segmentName(seq));
    if (this.spareReady) {
      fs.renameSync(path.join(this.dir, SPARE), file);
      this.spareReady = false;
    } else {
      const fd = fs.openSync(file, 'w');
      try {
        for (let at = 0; at < SEGMENT_BYTES; at += ZEROS.length) fs.writeSync(fd, ZEROS, 0, ZEROS.length, at);
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    fsyncPath(this.dir);
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = fs.openSync(file, 'r+');
    this.offset = 0;
    this.segments.push({ seq, base: null });
  }

  /**
   * Zero-fill the next segment on libuv's thread pool, off the event loop, once the current one is half full: making one
   * takes about 20 ms here, a stall that every request in flight would otherwise wait out.
   */
  private prepareSpare(): void {
    if (this.spareReady || this.preparing || this.closed) return;
    this.preparing = true;
    void (async () => {
      const fh = await fs.promises.open(path.join(this.dir, SPARE), 'w');
      try {
        for (let at = 0; at < SEGMENT_BYTES; at += ZEROS.length) await fh.write(ZEROS, 0, ZEROS.length, at);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    })().then(
      () => {
        this.preparing = false;
        this.spareReady = !this.closed;
      },
      () => {
        // roll() makes its segment itself when there is no spare; a failing disk shows up there, in the write path.
        this.preparing = false;
      },
    );
  }
}

/** Replays segments in order into the log they describe. */
class Replay {
  private base: LogPoint = { index: 0, term: 0 };
  private entries: Entry[] = [];
  private started = false;

  /** Apply one segment's records; `end` is where its valid records stop. */
  segment(buf: Buffer, file: string): { end: number; torn: boolean; base: LogPoint | null } {
    let at = 0;
    let base: LogPoint | null = null;
    while (at + HEAD <= buf.length) {
      const len = buf.readUInt32LE(at);
      if (len === 0) break;
      const body = len >= FIXED && at + HEAD + len <= buf.length ? buf.subarray(at + HEAD, at + HEAD + len) : null;
      if (!body || crc32(body) !== buf.readUInt32LE(at + 4)) break;
      const kind = body[0];
      const index = body.readUIntLE(1, 6);
      const term = body.readUIntLE(7, 6);
      if (kind === KIND.base) {
        base ??= { index, term };
        this.rebase({ index, term });
      } else if (kind === KIND.normal || kind === KIND.config) {
        if (!this.started) throw new Error(`raft log: ${file} does not begin with the log's base`);
        this.add({ index, term, type: kind === KIND.normal ? 'normal' : 'config', data: new Uint8Array(body.subarray(FIXED)) }, file);
      } else {
        throw new Error(`raft log: ${file} holds a record of unknown kind ${kind} at offset ${at}`);
      }
      at += HEAD + len;
    }
    // Past the last record there are only zeros, unless a write was torn.
    return { end: at, torn: !allZero(buf.subarray(at)), base };
  }

  result(): ReplayedLog {
    return { base: this.base, entries: this.entries };
  }

  /** The log ends at `p`: cut it there if it holds `p`, else it restarts from `p`. */
  private rebase(p: LogPoint): void {
    this.started = true;
    if (p.index >= this.base.index && termIn(this.result(), p.index) === p.term) {
      this.entries.length = p.index - this.base.index;
    } else {
      this.base = p;
      this.entries = [];
    }
  }

  private add(e: Entry, file: string): void {
    const last = this.base.index + this.entries.length;
    if (e.index <= this.base.index || e.index > last + 1) {
      throw new Error(`raft log: ${file} has entry ${e.index}, which does not continue the log at ${last}`);
    }
    this.entries.length = e.index - this.base.index - 1;
    this.entries.push(e);
  }
}

function record(kind: number, index: number, term: number, data?: Uint8Array): Buffer {
  const len = FIXED + (data?.length ?? 0);
  const buf = Buffer.allocUnsafe(HEAD + len);
  buf.writeUInt32LE(len, 0);
  buf[HEAD] = kind;
  buf.writeUIntLE(index, HEAD + 1, 6);
  buf.writeUIntLE(term, HEAD + 7, 6);
  if (data) buf.set(data, HEAD + FIXED);
  buf.writeUInt32LE(crc32(buf.subarray(HEAD)), 4);
  return buf;
}

function segmentName(seq: number): string {
  return `${seq.toString(16).padStart(16, '0')}.seg`;
}

function allZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const part = buf.subarray(at, at + ZEROS.length);
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

function zeroFrom(file: string, from: number, to: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    for (let at = from; at < to; at += ZEROS.length) fs.writeSync(fd, ZEROS, 0, Math.min(ZEROS.length, to - at), at);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
