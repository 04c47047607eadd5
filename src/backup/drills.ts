// Restore drills. A drill restores a backup into a throwaway service named as
// the drill, runs the type's own check on it once it is ACTIVE, records what
// the check found (or why it failed) and removes the service. `backup verify`
// starts one; for a service with --backup-verify, the leader starts one after
// each scheduled backup that completes.
//
// The drills' reconciler runs on the leader with the catalog's passes and is
// level-triggered: a drill's state is its record and its service, so a new
// leader goes on with the drills the last one started. A drill whose service
// never appears, or is not ACTIVE by its deadline, fails with the service's
// own message; a finished drill's service is removed until it is gone.
import crypto from 'node:crypto';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import type { Logger } from '../log.ts';
import type { MemberExec } from '../catalog/member-exec.ts';
import type { ServiceRoutes } from '../catalog/routes.ts';
import { readService, readServices } from '../catalog/service-records.ts';
import { backupContext } from './service-context.ts';
import { backupsOf, drillKey, drillRecordSchema, readDrills, type DrillRecord } from './records.ts';
import { recordOf, restoreBackup } from './restore.ts';

/** A drill's service must be made this soon after its record: else the restore never began (the node asking stopped). */
const madeWithinMs = () => 120_000;
/** How long a scheduled drill may take, restore and check, before it is given up. */
export const scheduledDrillTimeoutMs = () => 3_600_000;
/** Finished drills kept, the newest; older ones are removed. */
const DRILLS_KEPT = 100;

export interface DrillOptions {
  db: ControlDb;
  log: Logger;
  services: ServiceRoutes;
  exec: MemberExec;
  now?: () => Date;
}

export interface DrillRequest {
  backup: string;
  /** Where the backup is, for one this cluster did not make. */
  target?: string;
  timeoutMs: number;
  scheduled?: boolean;
}

export class Drills {
  /** Drills whose check this leader is running now. */
  private readonly checking = new Set<string>();
  /** Backups whose scheduled drill this leader is starting now (its restore reads every part first). */
  private readonly starting = new Set<string>();

  constructor(private readonly o: DrillOptions) {}

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  private async put(rec: DrillRecord, rev?: number): Promise<boolean> {
    const key = drillKey(rec.id);
    const r = await this.o.db.txn({
      compare: [rev === undefined ? { key, target: 'exists', op: '=', value: false } : { key, target: 'mod_revision', op: '=', value: rev }],
      success: [{ put: { key, value: JSON.stringify(rec) } }],
      failure: [],
    });
    return r.succeeded;
  }

  /** Record a drill and start its restore; a backup that does not restore (a damaged part) fails the drill at once, naming why. */
  async start(req: DrillRequest): Promise<DrillRecord> {
    const known = await recordOf(this.o.db, req.backup);
    const now = this.now();
    const rec: DrillRecord = {
      id: `verify-${crypto.randomBytes(3).toString('hex')}`,
      backup: req.backup,
      source: known?.value.service ?? '',
      target: req.target ?? known?.value.target ?? '',
      status: 'running',
      summary: '',
      message: 'restoring',
      ...(req.scheduled ? { scheduled: true } : {}),
      deadline: new Date(now.getTime() + req.timeoutMs).toISOString(),
      created_at: now.toISOString(),
    };
    await this.put(rec);
    this.o.log.info({ drill: rec.id, backup: rec.backup }, 'restore drill started');
    try {
      await restoreBackup(
        { db: this.o.db, services: this.o.services, exec: this.o.exec, log: this.o.log },
        { id: req.backup, as: rec.id, ...(req.target ? { target: req.target } : {}), drill: true },
      );
    } catch (err) {
      await this.finish(rec.id, { status: 'failed', message: `the backup does not restore: ${errorMessage(err)}` });
      await this.markRemoved(rec.id); // nothing was made
    }
    return this.read(rec.id)!.value;
  }

  read(id: string): { value: DrillRecord; rev: number } | undefined {
    const kv = this.o.db.store.get(drillKey(id));
    return kv ? { value: drillRecordSchema.parse(JSON.parse(kv.value)), rev: kv.mod_revision } : undefined;
  }

  private async finish(id: string, end: Pick<DrillRecord, 'status' | 'message'> & { summary?: string }): Promise<DrillRecord> {
    for (;;) {
      const cur = this.read(id);
      if (!cur) throw new Error(`drill ${id} is gone`);
      if (cur.value.status !== 'running') return cur.value;
      const rec: DrillRecord = { ...cur.value, ...end, ended_at: this.now().toISOString() };
      if (await this.put(rec, cur.rev)) {
        this.o.log.info({ drill: id, backup: rec.backup, status: rec.status, summary: rec.summary, message: rec.message }, 'restore drill ended');
        void recordEvent(this.o.db, this.o.log, {
          kind: 'drill',
          ...(rec.source ? { service: rec.source } : {}),
          reason: `${rec.id} of ${rec.backup} ${rec.status}: ${rec.status === 'ok' ? rec.summary : rec.message}`,
        });
        return rec;
      }
    }
  }

  private async markRemoved(id: string): Promise<void> {
    const cur = this.read(id);
    if (cur && !cur.value.removed_at) await this.put({ ...cur.value, removed_at: this.now().toISOString() }, cur.rev);
  }

  async reconcile(): Promise<void> {
    this.drillScheduled();
    const drills = readDrills(this.o.db).map((d) => d.value);
    for (const d of drills) {
      await this.step(d).catch((err) => this.o.log.warn({ drill: d.id, err: errorMessage(err) }, 'restore drill: will retry'));
    }
    const finished = drills.filter((d) => d.status !== 'running').sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    for (const d of finished.slice(DRILLS_KEPT)) {
      if (!readService(this.o.db.store, d.id)) await this.o.db.txn({ compare: [], success: [{ delete: { key: drillKey(d.id), prefix: false } }], failure: [] });
    }
  }

  /** One drill, as it is now: its service checked once ACTIVE, given up past its deadline, removed once the drill ended. */
  private async step(d: DrillRecord): Promise<void> {
    const svc = readService(this.o.db.store, d.id)?.value;
    const now = this.now();
    if (d.status !== 'running') {
      if (svc && svc.status !== 'DELETING') await this.o.services.remove(d.id);
      if (!svc && !d.removed_at) await this.markRemoved(d.id);
      return;
    }
    if (!svc) {
      if (now.getTime() - Date.parse(d.created_at) > madeWithinMs())
        await this.finish(d.id, { status: 'failed', message: 'the restore never made its service (the node that asked for it stopped?)' });
      return;
    }
    if (svc.status === 'ACTIVE') return this.check(d);
    if (now > new Date(d.deadline)) {
      await this.finish(d.id, { status: 'failed', message: `${d.id} was not ACTIVE by the drill's deadline: ${svc.status}: ${svc.message}` });
      return;
    }
    // Progress for whoever follows the drill: the restored service's own status as it goes.
    const progress = `restoring: ${svc.status}: ${svc.message}`;
    const cur = this.read(d.id);
    if (cur && cur.value.status === 'running' && cur.value.message !== progress) await this.put({ ...cur.value, message: progress }, cur.rev);
  }

  /** The type's own check, in the background (it may take minutes: nodetool verify reads every sstable). */
  private check(d: DrillRecord): void {
    if (this.checking.has(d.id)) return;
    this.checking.add(d.id);
    void (async () => {
      try {
        const c = backupContext(this.o.db, this.o.exec, this.o.log, d.id);
        const summary = await c.type.backup!.check(c.svc.spec, c.placed, c.ctx);
        await this.finish(d.id, { status: 'ok', summary, message: 'restored and checked' });
      } catch (err) {
        await this.finish(d.id, { status: 'failed', message: `the restored service does not hold up: ${errorMessage(err)}` });
      } finally {
        this.checking.delete(d.id);
      }
    })();
  }

  /** For each service with --backup-verify: a drill of its newest scheduled backup that completed, once. */
  private drillScheduled(): void {
    const drilled = new Set(readDrills(this.o.db).map((d) => d.value.backup));
    for (const { value: svc } of readServices(this.o.db.store)) {
      if (!svc.spec.backupVerify) continue;
      const newest = backupsOf(this.o.db, svc.spec.name)
        .map((r) => r.value)
        .filter((r) => r.scheduled && r.status === 'complete')
        .sort((a, b) => (a.created_at < b.created_at ? 1 : -1))[0];
      if (!newest || drilled.has(newest.id) || this.starting.has(newest.id)) continue;
      this.starting.add(newest.id);
      void this.start({ backup: newest.id, timeoutMs: scheduledDrillTimeoutMs(), scheduled: true })
        .catch((err) => this.o.log.warn({ service: svc.spec.name, backup: newest.id, err: errorMessage(err) }, 'scheduled restore drill could not start'))
        .finally(() => this.starting.delete(newest.id));
    }
  }
}

/** A service's newest drill, for `service get`. */
export function lastDrill(db: ControlDb, service: string): DrillRecord | undefined {
  return readDrills(db)
    .map((d) => d.value)
    .filter((d) => d.source === service)
    .sort((a, b) => (a.created_at < b.created_at ? 1 : -1))[0];
}
