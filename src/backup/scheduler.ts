// The schedules' reconciler, on the leader with the catalog's passes. For
// each service with a schedule: once its next moment is past and the service
// is ACTIVE, one backup is asked for (missed moments, while there was no
// leader or the service was busy, collapse into that one), the moment taken
// kept by compare-and-set so that a new leader never takes it twice. For each
// service with a retention: the backups beyond it are removed from their
// target and from the records, and the archived log no remaining backup
// needs with them.
import { z } from 'zod';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { readServices } from '../catalog/service-records.ts';
import { serviceType } from '../catalog/registry.ts';
import type { Service } from '../catalog/types.ts';
import { createBackup } from './create.ts';
import { backupKey, backupsOf, newBackupId, readDrills, type BackupRecord } from './records.ts';
import { beyondRetention, nextRun, parseRetention } from './schedule.ts';
import { openTarget } from './target.ts';

export const SCHEDULES_PREFIX = '/backup-schedules/';
export const scheduleKey = (service: string) => `${SCHEDULES_PREFIX}${service}`;
/** The last moment of the schedule taken (a backup asked for at it). */
export const scheduleRecordSchema = z.object({ last: z.string() }).strict();

/** A schedule's next moment: after the last one taken, or after the service was made. */
export function nextScheduled(db: ControlDb, svc: Service): Date | undefined {
  const expr = svc.spec.backupSchedule;
  if (!expr) return undefined;
  const kv = db.store.get(scheduleKey(svc.spec.name));
  const last = kv ? scheduleRecordSchema.parse(JSON.parse(kv.value)).last : svc.created_at;
  return nextRun(expr, new Date(last));
}

export interface SchedulerOptions {
  db: ControlDb;
  log: Logger;
  defaultTarget: string;
  now?: () => Date;
}

export class BackupScheduler {
  constructor(private readonly o: SchedulerOptions) {}

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  async reconcile(): Promise<void> {
    const services = readServices(this.o.db.store).map((s) => s.value);
    for (const svc of services) {
      await this.schedule(svc).catch((err) => this.o.log.warn({ service: svc.spec.name, err: errorMessage(err) }, 'backup schedule: will retry'));
      await this.retain(svc).catch((err) => this.o.log.warn({ service: svc.spec.name, err: errorMessage(err) }, 'backup retention: will retry'));
    }
    // The schedule records of services that are gone (their backups stay: restore points outlive the service).
    const names = new Set(services.map((s) => s.spec.name));
    for (const kv of this.o.db.store.range({ key: SCHEDULES_PREFIX, prefix: true, limit: 0 }).kvs)
      if (!names.has(kv.key.slice(SCHEDULES_PREFIX.length)))
        await this.o.db.txn({
          compare: [{ key: kv.key, target: 'mod_revision', op: '=', value: kv.mod_revision }],
          success: [{ delete: { key: kv.key, prefix: false } }],
          failure: [],
        });
  }

  private async schedule(svc: Service): Promise<void> {
    const expr = svc.spec.backupSchedule;
    const due = nextScheduled(this.o.db, svc);
    const now = this.now();
    if (!expr || !due || due > now || svc.status !== 'ACTIVE') return;
    let taken = due;
    for (let n = nextRun(expr, taken), i = 0; n <= now && i < 100_000; n = nextRun(expr, n), i++) taken = n;
    const key = scheduleKey(svc.spec.name);
    const kv = this.o.db.store.get(key);
    const won = await this.o.db.txn({
      compare: [kv ? { key, target: 'mod_revision', op: '=', value: kv.mod_revision } : { key, target: 'exists', op: '=', value: false }],
      success: [{ put: { key, value: JSON.stringify({ last: taken.toISOString() }) } }],
      failure: [],
    });
    if (!won.succeeded) return;
    try {
      const rec = await createBackup(this.o.db, { service: svc.spec.name, defaultTarget: this.o.defaultTarget, scheduled: true });
      this.o.log.info({ service: svc.spec.name, backup: rec.id, due: taken.toISOString() }, 'scheduled backup asked for');
    } catch (err) {
      // Kept as a failed backup, so that `service get` shows it as the last failure.
      const rec: BackupRecord = {
        id: newBackupId(svc.spec.name),
        service: svc.spec.name,
        type: svc.spec.type,
        target: svc.spec.backupTarget ?? '',
        status: 'failed',
        message: `the scheduled backup could not start: ${errorMessage(err)}`,
        parts: [],
        bytes: 0,
        created_at: now.toISOString(),
        ended_at: now.toISOString(),
        scheduled: true,
      };
      await this.o.db.txn({ compare: [], success: [{ put: { key: backupKey(rec.id), value: JSON.stringify(rec) } }], failure: [] });
      this.o.log.warn({ service: svc.spec.name, err: errorMessage(err) }, 'scheduled backup could not start');
    }
  }

  private async retain(svc: Service): Promise<void> {
    if (!svc.spec.backupRetention) return;
    const all = backupsOf(this.o.db, svc.spec.name);
    // Never one a restore drill is reading now: it goes at a later pass.
    const drilled = new Set(readDrills(this.o.db).flatMap((d) => (d.value.status === 'running' ? [d.value.backup] : [])));
    const goes = beyondRetention(
      all.map((r) => r.value),
      parseRetention(svc.spec.backupRetention),
      this.now(),
    ).filter((r) => !drilled.has(r.id));
    for (const rec of goes) {
      if (rec.target) await openTarget(rec.target, this.o.db.store).deletePrefix(`${rec.id}/`);
      const rev = all.find((r) => r.value.id === rec.id)!.rev;
      await this.o.db.txn({
        compare: [{ key: backupKey(rec.id), target: 'mod_revision', op: '=', value: rev }],
        success: [{ delete: { key: backupKey(rec.id), prefix: false } }],
        failure: [],
      });
      this.o.log.info({ service: svc.spec.name, backup: rec.id, status: rec.status }, 'backup removed by retention');
    }
    if (goes.length > 0) await this.pruneArchive(svc);
  }

  /** The archived log before the oldest remaining complete backup's start: no restore replays it any more. */
  private async pruneArchive(svc: Service): Promise<void> {
    const archive = serviceType(svc.spec.type).backup?.archive;
    if (!archive) return;
    const oldest = backupsOf(this.o.db, svc.spec.name)
      .map((r) => r.value)
      .filter((r) => r.status === 'complete' && r.archive)
      .sort((a, b) => (a.created_at < b.created_at ? -1 : 1))[0];
    if (!oldest?.archive) return;
    const target = openTarget(oldest.target, this.o.db.store);
    for (const o of await target.list(oldest.archive.prefix)) {
      const name = o.key.slice(oldest.archive.prefix.length).replace(/\.fcb$/, '');
      if (archive.precedes(name, oldest.archive.from)) await target.deletePrefix(o.key);
    }
  }
}
