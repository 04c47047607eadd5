// Reading a member's kept log (files.ts) for `service logs`: its lines across
// the rotated files in order, from a time (--since), only its previous run
// (--previous), the last N (--tail), and new lines as they come (--follow).
import fs from 'node:fs';
import { UserError } from '../../errors.ts';
import { compareTimes, lineTime, type MemberLogFiles } from './files.ts';

export interface LogQuery {
  /** Only lines at or after this time (RFC 3339). */
  since?: string;
  /** Only the run before the last start or restart. */
  previous?: boolean;
  /** The last this many lines (all when undefined). */
  tail?: number;
  /** Keep each line's time in front of it. */
  timestamps?: boolean;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** --since: a duration back from now (90s, 10m, 1h30m, 2d) or a time (RFC 3339); the time it means, as RFC 3339. */
export function parseSince(v: string, now = Date.now()): string {
  if (/^(\d+[smhd])+$/.test(v)) {
    const ms = [...v.matchAll(/(\d+)([smhd])/g)].reduce((sum, [, n, u]) => sum + Number(n) * UNITS[u], 0);
    return new Date(now - ms).toISOString();
  }
  if (/^\d{4}-\d\d-\d\dT/.test(v) && !Number.isNaN(Date.parse(v))) return new Date(Date.parse(v)).toISOString();
  throw new UserError(`--since "${v}" is neither a duration (90s, 10m, 1h30m, 2d) nor a time (2026-12-08T03:00:00Z)`);
}

/** A start or a restart, as the keeper marks them: where a run of the member begins. */
const isRunStart = (line: string) => / --- firecampd: \S+ (started|restarted) /.test(line);

/** The lines asked for, oldest first. */
export function readKept(files: MemberLogFiles, q: LogQuery): string[] {
  let lines = files.files().flatMap((f) => {
    try {
      return fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);
    } catch {
      return [];
    }
  });
  if (q.previous) {
    const starts = lines.flatMap((l, i) => (isRunStart(l) ? [i] : []));
    lines = starts.length >= 2 ? lines.slice(starts[starts.length - 2], starts[starts.length - 1]) : [];
  }
  if (q.since) lines = lines.filter((l) => compareTimes(lineTime(l) ?? q.since!, q.since!) >= 0);
  if (q.tail !== undefined) lines = q.tail === 0 ? [] : lines.slice(-q.tail);
  return lines.map((l) => shown(l, q.timestamps));
}

/** A kept line as shown: its time dropped unless asked for. */
export const shown = (line: string, timestamps?: boolean): string => (timestamps ? line : line.replace(/^\S+ /, ''));

/**
 * Call `onLines` with each whole line appended to the current file after now, until `stop` is called or `gone` says
 * the log is no longer kept here (the member stopped or moved). A rotation is followed: the rest of the file that was
 * current (now 1.log, the same inode), then the new current file from its start.
 */
export function followKept(files: MemberLogFiles, onLines: (lines: string[]) => void, gone: () => boolean, onGone: () => void): () => void {
  let at = where(files.current) ?? { ino: 0, size: 0 };
  let offset = at.size;
  let partial = '';
  const emit = (file: string, from: number, to: number) => {
    if (to <= from) return;
    const text = partial + readRange(file, from, to);
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    if (cut >= 0) onLines(text.slice(0, cut).split('\n').filter(Boolean));
  };
  const timer = setInterval(() => {
    if (gone()) {
      clearInterval(timer);
      onGone();
      return;
    }
    const now = where(files.current);
    if (!now) return;
    if (now.ino !== at.ino) {
      const rotated = files.files().find((f) => where(f)?.ino === at.ino);
      if (rotated) emit(rotated, offset, where(rotated)!.size);
      at = now;
      offset = 0;
    }
    emit(files.current, offset, now.size);
    offset = Math.max(offset, now.size);
  }, 250);
  return () => clearInterval(timer);
}

const where = (f: string): { ino: number; size: number } | undefined => {
  try {
    const st = fs.statSync(f);
    return { ino: st.ino, size: st.size };
  } catch {
    return undefined;
  }
};

function readRange(file: string, from: number, to: number): string {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(to - from);
    const got = fs.readSync(fd, buf, 0, buf.length, from);
    return buf.subarray(0, got).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
