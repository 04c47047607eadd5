// A member's kept log: its containers' output, with the time of each line,
// in files on its own data volume, so that the log moves with the member and
// `service logs` shows what it wrote before a move or a restart.
//
// In `.firecampd-logs/` of the volume, owned by root (mode 0700: a member's
// output may hold what its user should not read back, and its exporter, which
// runs as that user, has no business there): `current.log` and the rotated
// `1.log` (newer) … `N.log` (older), each line
// `<RFC 3339 time with nanoseconds> <text>` as Docker's timestamps give them.
// Lines firecampd adds itself (a start, a restart, a stop, a move) read
// `<time> --- firecampd: … ---`.
//
// Bounded by size (`maxBytes` in all) and age (rotated files older than
// `maxAgeMs` go). A write that fails (a full volume) drops the lines and
// never stops the member: the service's own data comes first.
import fs from 'node:fs';
import path from 'node:path';

export const LOG_DIR = '.firecampd-logs';
const CURRENT = 'current.log';
const STATE = 'state.json';

export interface LogBounds {
  /** All files together stay under this. */
  maxBytes: number;
  /** How many rotated files are kept besides the current one. */
  files: number;
  /** A rotated file older than this goes at the next rotation. */
  maxAgeMs: number;
}

export const DEFAULT_LOG_BOUNDS: LogBounds = { maxBytes: 16 << 20, files: 3, maxAgeMs: 7 * 24 * 3600_000 };

/** What the keeper remembers between attachments, in the log directory: across an agent restart, nothing is written twice. */
export interface LogState {
  /** The container whose output was read last, and when it last started. */
  container?: string;
  startedAt?: string;
  /** The time of the last line written (Docker's, with nanoseconds). */
  lastTime?: string;
  /** The node that kept it last: a start on another one is a move. */
  node?: string;
  /** Docker cannot read the container's output back (its log driver): said once. */
  unreadable?: boolean;
}

/** A kept line's time, or undefined for a line that has none. */
export const lineTime = (line: string): string | undefined => /^(\d{4}-\d\d-\d\dT[0-9:.]+Z) /.exec(line)?.[1];

/** Two of Docker's RFC 3339 times, compared as times (nanosecond fractions of different lengths). */
export function compareTimes(a: string, b: string): number {
  const norm = (t: string) => {
    const [whole, frac = ''] = t.replace(/Z$/, '').split('.');
    return `${whole}.${frac.padEnd(9, '0')}`;
  };
  return norm(a) < norm(b) ? -1 : norm(a) > norm(b) ? 1 : 0;
}

export class MemberLogFiles {
  readonly dir: string;
  private failedWith?: string;

  constructor(
    volumeDir: string,
    private readonly bounds: LogBounds = DEFAULT_LOG_BOUNDS,
    private readonly warn: (msg: string) => void = () => {},
  ) {
    this.dir = path.join(volumeDir, LOG_DIR);
  }

  /** The files from oldest to newest (rotated ones first), those that exist. */
  files(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const rotated = names
      .map((n) => /^(\d+)\.log$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a)
      .map((n) => path.join(this.dir, `${n}.log`));
    return [...rotated, ...(names.includes(CURRENT) ? [path.join(this.dir, CURRENT)] : [])];
  }

  /** The current file, which grows; `follow` watches it. */
  get current(): string {
    return path.join(this.dir, CURRENT);
  }

  /** Append whole lines (each ending in \n). Rotates first when the current file would pass its share; never throws. */
  append(text: string): void {
    if (!text) return;
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const share = Math.floor(this.bounds.maxBytes / (this.bounds.files + 1));
      const size = fileSize(this.current);
      if (size > 0 && size + Buffer.byteLength(text) > share) this.rotate();
      fs.appendFileSync(this.current, text, { mode: 0o600 });
      this.failedWith = undefined;
    } catch (err) {
      // Once per cause: a full volume would otherwise warn at every line.
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      if (why !== this.failedWith) this.warn(`could not keep the member's log in ${this.dir} (${why}); its lines are dropped until it can`);
      this.failedWith = why;
      // A full volume: the oldest kept lines go first, for the service's data.
      if (why === 'ENOSPC') this.dropOldest();
    }
  }

  readState(): LogState {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir, STATE), 'utf8')) as LogState;
    } catch {
      return {};
    }
  }

  writeState(s: LogState): void {
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = path.join(this.dir, `.${STATE}`);
      fs.writeFileSync(tmp, JSON.stringify(s));
      fs.renameSync(tmp, path.join(this.dir, STATE));
    } catch {
      // Without it, the next attachment may repeat a few lines: a log, not data.
    }
  }

  /** current → 1.log, 1 → 2, …; those past the count or the age go. */
  private rotate(): void {
    const rotated = this.files().filter((f) => f !== this.current);
    for (const f of rotated) {
      const n = Number(path.basename(f, '.log'));
      if (n >= this.bounds.files || Date.now() - fs.statSync(f).mtimeMs > this.bounds.maxAgeMs) fs.rmSync(f, { force: true });
    }
    // Highest number first, so that no rename lands on a file not yet moved.
    for (const f of this.files().filter((x) => x !== this.current)) {
      const n = Number(path.basename(f, '.log'));
      fs.renameSync(f, path.join(this.dir, `${n + 1}.log`));
    }
    fs.renameSync(this.current, path.join(this.dir, '1.log'));
  }

  private dropOldest(): void {
    const oldest = this.files().find((f) => f !== this.current);
    if (oldest) fs.rmSync(oldest, { force: true });
    else fs.rmSync(this.current, { force: true });
  }
}

const fileSize = (f: string): number => {
  try {
    return fs.statSync(f).size;
  } catch {
    return 0;
  }
};
