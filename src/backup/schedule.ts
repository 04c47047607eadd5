// Backup schedules and retention: the rules, as small functions. A service's
// schedule is a cron expression (five fields, or six with seconds first), in
// UTC; its retention a count of backups ("7") or an age ("30d", "12h",
// "90m"). Retention never removes the newest complete backup: a service
// always keeps a restore point.
import { CronExpressionParser } from 'cron-parser';
import { UserError } from '../errors.ts';
import type { BackupRecord } from './records.ts';

/** Throws, naming the flag and what is wrong, when `expr` is not a cron expression. */
export function checkSchedule(expr: string): void {
  const fields = expr.trim().split(/\s+/).length;
  if (fields < 5 || fields > 6)
    throw new UserError(
      `--backup-schedule "${expr}": a cron expression has 5 fields (minute hour day month weekday, e.g. "0 3 * * *"), or 6 with seconds first`,
    );
  try {
    CronExpressionParser.parse(expr, { tz: 'UTC', strict: false });
  } catch (err) {
    throw new UserError(`--backup-schedule "${expr}" does not parse as a cron expression: ${(err as Error).message} (e.g. "0 3 * * *": daily at 03:00 UTC)`);
  }
}

/** The first moment of the schedule after `after`. */
export function nextRun(expr: string, after: Date): Date {
  return CronExpressionParser.parse(expr, { tz: 'UTC', currentDate: after }).next().toDate();
}

export type Retention = { count: number } | { ageMs: number };

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/** "7": the newest seven; "30d", "12h", "90m", "2w": those younger than that. */
export function parseRetention(s: string): Retention {
  const count = /^([1-9]\d{0,3})$/.exec(s);
  if (count) return { count: Number(count[1]) };
  const age = /^([1-9]\d{0,5})([mhdw])$/.exec(s);
  if (age) return { ageMs: Number(age[1]) * UNIT_MS[age[2]] };
  throw new UserError(`--backup-retention "${s}": give a count of backups to keep (such as 7) or an age (such as 30d, 12h, 90m, 2w)`);
}

/**
 * Which of a service's backups retention removes: complete ones beyond the count or older than the age (never the
 * newest complete one), and failed ones once a complete backup newer than them exists, or by the same age.
 */
export function beyondRetention(backups: BackupRecord[], retention: Retention, now: Date): BackupRecord[] {
  const byAge = (r: BackupRecord) => now.getTime() - Date.parse(r.created_at);
  const complete = backups.filter((r) => r.status === 'complete').sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  const newest = complete[0];
  const goes = new Set<BackupRecord>();
  complete.forEach((r, i) => {
    if (r === newest) return;
    if ('count' in retention ? i >= retention.count : byAge(r) > retention.ageMs) goes.add(r);
  });
  for (const r of backups.filter((x) => x.status === 'failed')) {
    const superseded = newest !== undefined && newest.created_at > r.created_at;
    if ('count' in retention ? superseded : byAge(r) > retention.ageMs) goes.add(r);
  }
  return [...goes];
}
