// HTTP routes for backups: create, list, get, delete, restore, the cluster's
// key (export, import) and default target. A backup's record lives in the
// controldb; its data and manifest on its target, where a cluster that never
// saw this one finds them.
import path from 'node:path';
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { readService } from '../catalog/service-records.ts';
import { serviceType } from '../catalog/registry.ts';
import type { ServiceRoutes } from '../catalog/routes.ts';
import { serviceName } from '../catalog/spec.ts';
import { noSuchService, type Service } from '../catalog/types.ts';
import { put } from '../catalog/records.ts';
import { checkSchedule, parseRetention } from './schedule.ts';
import { scheduleKey } from './scheduler.ts';
import { serviceBackupsView } from './view.ts';
import { currentKey, importKey } from './keys.ts';
import { BACKUPS_PREFIX, BACKUP_TARGET, backupKey, backupRecordSchema, type BackupRecord } from './records.ts';
import { openTarget, parseS3Uri, s3AccessKey, s3AccessSchema, S3Target } from './target.ts';
import { clusterTarget, createBackup } from './create.ts';
import { readManifest, recordOf, restoreBackup, type RestoreDeps } from './restore.ts';
import type { Drills } from './drills.ts';
import type { MemberExec } from '../catalog/member-exec.ts';
import type { Logger } from '../log.ts';

const createBody = z.object({ service: z.string().min(1), target: z.string().min(1).optional() }).strict();
const idBody = z.object({ id: z.string().min(1) }).strict();
const restoreBody = z.object({ id: z.string().min(1), as: serviceName, target: z.string().min(1).optional(), toTime: z.string().min(1).optional() }).strict();
const verifyBody = z
  .object({ id: z.string().min(1), target: z.string().min(1).optional(), timeoutSeconds: z.number().int().positive().max(86_400).default(3600) })
  .strict();
const keyBody = z.object({ key: z.string().min(1) }).strict();
/** A schedule or retention to set; null: none any more; left out: as it is. */
const scheduleBody = z
  .object({
    service: z.string().min(1),
    schedule: z.string().min(1).nullable().optional(),
    retention: z.string().min(1).nullable().optional(),
    verify: z.boolean().optional(),
  })
  .strict();
const targetBody = z
  .object({
    target: z.string().min(1),
    /** An S3 bucket's endpoint, region and credentials, kept for every target in that bucket. */
    s3: s3AccessSchema.optional(),
    /** Make it the cluster's default (else only keep the bucket's credentials, for a service's own target or a restore). */
    default: z.boolean().default(true),
  })
  .strict();

export interface BackupRouteOptions {
  /** Where backups go when neither the service nor the cluster names a target: a directory of this node's. */
  defaultTarget: string;
  services: ServiceRoutes;
  drills: Drills;
  /** To close a live service's log file before a restore to a moment. */
  exec: MemberExec;
  log: Logger;
}

/** What `backup list` and `backup get` show: the record, and whether its target is only one node's own disk. */
export type BackupView = BackupRecord & { local_target: boolean };

export function registerBackupRoutes(api: ApiServer, db: ControlDb, o: BackupRouteOptions): void {
  const deps: RestoreDeps = { db, services: o.services, exec: o.exec, log: o.log };
  const view = (r: BackupRecord): BackupView => ({ ...r, local_target: openTarget(r.target, db.store).local && !isShared(r.target) });
  const record = (id: string) => recordOf(db, id);
  /** Whether a directory target is meant to be shared: anything outside this node's own default directory is taken as the user's choice of shared storage. */
  const isShared = (uri: string) => uri !== o.defaultTarget;

  api.route('POST', '/v1/backups', async (req) => {
    const b = parseBody(createBody, req.body);
    return view(await createBackup(db, { service: b.service, ...(b.target ? { target: b.target } : {}), defaultTarget: o.defaultTarget }));
  });

  api.route('GET', '/v1/backups', async (req) => {
    const service = req.query.get('service') || undefined;
    const t = req.query.get('target');
    if (t) {
      // From the target alone: what a cluster that never saw the backups can see.
      const target = openTarget(t, db.store);
      const ids = (await target.list(''))
        .map((o) => o.key)
        .filter((k) => k.endsWith('/manifest.json') && !k.startsWith('wal/'))
        .map((k) => path.dirname(k));
      const manifests = await Promise.all(ids.map((id) => readManifest(target, id)));
      return {
        backups: manifests
          .filter((m) => !service || m.service.spec.name === service)
          .map((m) => ({
            id: m.id,
            service: String(m.service.spec.name),
            type: String(m.service.spec.type),
            target: t,
            status: 'complete',
            message: `${m.parts.length} parts`,
            parts: m.parts,
            bytes: m.parts.reduce((n, p) => n + p.bytes, 0),
            created_at: m.started_at,
            started_at: m.started_at,
            ended_at: m.ended_at,
            local_target: target.local && !isShared(t),
          })),
      };
    }
    await db.linearize();
    const all = db.store.range({ key: BACKUPS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => backupRecordSchema.parse(JSON.parse(kv.value)));
    return { backups: all.filter((r) => !service || r.service === service).map(view) };
  });

  api.route('GET', '/v1/backup', async (req) => {
    const id = req.query.get('id') ?? '';
    const r = await record(id);
    if (!r) throw new UserError(`no backup ${id} in this cluster (one made elsewhere: "firecampd backup list --target T")`, 404, 'not_found');
    return view(r.value);
  });

  api.route('POST', '/v1/backups/delete', async (req) => {
    const { id } = parseBody(idBody, req.body);
    const r = await record(id);
    if (!r) throw new UserError(`no backup ${id} in this cluster`, 404, 'not_found');
    if (r.value.status === 'running' || r.value.status === 'pending')
      throw new UserError(`backup ${id} is ${r.value.status}: delete it once it ends`, 409, 'busy');
    await openTarget(r.value.target, db.store).deletePrefix(`${id}/`);
    await db.txn({
      compare: [{ key: backupKey(id), target: 'mod_revision', op: '=', value: r.rev }],
      success: [{ delete: { key: backupKey(id), prefix: false } }],
      failure: [],
    });
    return { id, status: 'DELETED' };
  });

  api.route('POST', '/v1/backups/restore', async (req) => restoreBackup(deps, parseBody(restoreBody, req.body)));

  api.route('POST', '/v1/backup/schedule', async (req) => {
    const b = parseBody(scheduleBody, req.body);
    await db.linearize();
    const stored = readService(db.store, b.service);
    if (!stored) throw noSuchService(b.service);
    const svc = stored.value;
    if (!serviceType(svc.spec.type).backup) throw new UserError(`${serviceType(svc.spec.type).title} services cannot be backed up yet`, 400, 'no_backup');
    if (b.schedule) checkSchedule(b.schedule);
    if (b.retention) parseRetention(b.retention);
    const { backupSchedule, backupRetention, backupVerify, ...rest } = svc.spec;
    const schedule = b.schedule === undefined ? backupSchedule : (b.schedule ?? undefined);
    const retention = b.retention === undefined ? backupRetention : (b.retention ?? undefined);
    const verify = b.verify ?? backupVerify;
    if (verify && !schedule) throw new UserError(`--backup-verify drills each scheduled backup, and ${b.service} has no schedule: give --backup-schedule too`);
    const next: Service = {
      ...svc,
      spec: {
        ...rest,
        ...(schedule ? { backupSchedule: schedule } : {}),
        ...(retention ? { backupRetention: retention } : {}),
        ...(verify ? { backupVerify: true } : {}),
      },
      updated_at: new Date().toISOString(),
    };
    const now = new Date().toISOString();
    const r = await db.txn({
      compare: [{ key: stored.key, target: 'mod_revision', op: '=', value: stored.rev }],
      // A new schedule counts from now: setting it never makes a backup at once for the moments before.
      success: [put.service(next), ...(b.schedule !== undefined ? [{ put: { key: scheduleKey(b.service), value: JSON.stringify({ last: now }) } }] : [])],
      failure: [],
    });
    if (!r.succeeded) throw new UserError(`service ${b.service} changed meanwhile; try again`, 409, 'conflict');
    return serviceBackupsView(db, next, o.defaultTarget);
  });

  // A restore drill: started here, run by the leader's drills reconciler; its record says how it went.
  api.route('POST', '/v1/backup/verify', async (req) => {
    const b = parseBody(verifyBody, req.body);
    return o.drills.start({ backup: b.id, ...(b.target ? { target: b.target } : {}), timeoutMs: b.timeoutSeconds * 1000 });
  });
  api.route('GET', '/v1/backup/drill', async (req) => {
    const id = req.query.get('id') ?? '';
    await db.linearize();
    const d = o.drills.read(id);
    if (!d) throw new UserError(`no restore drill ${id}`, 404, 'not_found');
    return d.value;
  });

  api.route('GET', '/v1/backup/key', async () => currentKey(db));
  api.route('POST', '/v1/backup/key', async (req) => importKey(db, parseBody(keyBody, req.body).key));
  api.route('GET', '/v1/backup/target', async () => {
    await db.linearize();
    const target = clusterTarget(db, o.defaultTarget);
    return { target, local_target: openTarget(target, db.store).local && !isShared(target) };
  });
  api.route('POST', '/v1/backup/target', async (req) => {
    const b = parseBody(targetBody, req.body);
    await db.linearize();
    const t = openTarget(b.target, db.store, b.s3);
    // A bucket is tried before anything is kept: credentials it refuses are named now, not at the first backup.
    if (t instanceof S3Target) await t.probe();
    else if (b.s3) throw new UserError(`backup target ${b.target}: --endpoint, --region and the credentials are for an s3:// target`);
    const success = [
      ...(b.s3 ? [{ put: { key: s3AccessKey(parseS3Uri(b.target).bucket), value: JSON.stringify(b.s3) } }] : []),
      ...(b.default ? [{ put: { key: BACKUP_TARGET, value: b.target } }] : []),
    ];
    await db.txn({ compare: [], success, failure: [] });
    return { target: b.target, default: b.default, local_target: t.local && !isShared(b.target) };
  });
}
