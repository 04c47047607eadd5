// A backup asked for, by a person (`backup create`) or by a schedule: the
// service is checked (its type backs up, it is ACTIVE), its target resolved
// (given, else the service's, else the cluster's) and opened, and the record
// kept as pending for the leader's runner. Nothing is kept if any check fails.
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { readService } from '../catalog/service-records.ts';
import { serviceType } from '../catalog/registry.ts';
import { noSuchService } from '../catalog/types.ts';
import { BACKUP_TARGET, backupKey, newBackupId, type BackupRecord } from './records.ts';
import { openTarget } from './target.ts';

export interface NewBackup {
  service: string;
  target?: string;
  /** Where backups go when neither the service nor the cluster names a target. */
  defaultTarget: string;
  /** Made by the service's schedule. */
  scheduled?: boolean;
}

/** The cluster's default target. */
export const clusterTarget = (db: ControlDb, defaultTarget: string) => db.store.get(BACKUP_TARGET)?.value ?? defaultTarget;

export async function createBackup(db: ControlDb, b: NewBackup): Promise<BackupRecord> {
  await db.linearize();
  const svc = readService(db.store, b.service)?.value;
  if (!svc) throw noSuchService(b.service);
  const type = serviceType(svc.spec.type);
  if (!type.backup) throw new UserError(`${type.title} services cannot be backed up yet`, 400, 'no_backup');
  const why = type.backup.cannotBackUp?.(svc.spec);
  if (why) throw new UserError(why, 400, 'no_backup');
  if (svc.status !== 'ACTIVE') throw new UserError(`service ${b.service} is ${svc.status}: a backup needs it ACTIVE`, 409, 'busy');
  const target = b.target ?? svc.spec.backupTarget ?? clusterTarget(db, b.defaultTarget);
  openTarget(target, db.store); // refuses a target that does not parse, or a bucket without credentials, before anything is kept
  const rec: BackupRecord = {
    id: newBackupId(b.service),
    service: b.service,
    type: svc.spec.type,
    target,
    status: 'pending',
    message: 'waiting for the leader',
    parts: [],
    bytes: 0,
    created_at: new Date().toISOString(),
    ...(b.scheduled ? { scheduled: true } : {}),
  };
  await db.txn({
    compare: [{ key: backupKey(rec.id), target: 'exists', op: '=', value: false }],
    success: [{ put: { key: backupKey(rec.id), value: JSON.stringify(rec) } }],
    failure: [],
  });
  return rec;
}
