// A restore: a backup's manifest and parts checked whole on its target, then
// a new service made from the spec it was taken of, its members starting
// from their parts (and the archived log replayed, to its end or to a time).
// One way for `backup restore` and for a restore drill.
import { pipeline } from 'node:stream/promises';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { MemberExec } from '../catalog/member-exec.ts';
import type { ServiceRoutes, ServiceView } from '../catalog/routes.ts';
import { readService } from '../catalog/service-records.ts';
import type { ServiceSpecInput } from '../catalog/types.ts';
import { archivePlan, type ArchiveSource } from './archive-plan.ts';
import { keyById } from './keys.ts';
import { archivePrefix, backupKey, backupRecordSchema, manifestKey, manifestSchema, type Manifest } from './records.ts';
import { openBytes, Tally } from './seal.ts';
import { backupContext } from './service-context.ts';
import { openTarget, type BackupTarget } from './target.ts';

export interface RestoreDeps {
  db: ControlDb;
  services: ServiceRoutes;
  /** To close a live service's log file before a restore to a moment. */
  exec: MemberExec;
  log: Logger;
}

export interface RestoreRequest {
  id: string;
  as: string;
  /** Where the backup is, for one this cluster's records do not hold. */
  target?: string;
  toTime?: string;
  /** A throwaway service for a restore drill: no schedule of its own (it would back itself up, and drill that). */
  drill?: boolean;
}

/** A backup's record in this cluster, read linearizably. */
export async function recordOf(db: ControlDb, id: string) {
  await db.linearize();
  const kv = db.store.get(backupKey(id));
  return kv ? { value: backupRecordSchema.parse(JSON.parse(kv.value)), rev: kv.mod_revision } : undefined;
}

export async function readManifest(target: BackupTarget, id: string): Promise<Manifest> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of target.get(manifestKey(id))) chunks.push(c as Buffer);
  } catch {
    throw new UserError(`no backup ${id} on ${target.uri} (see "firecampd backup list --target ${target.uri}")`, 404, 'not_found');
  }
  const r = manifestSchema.safeParse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
  if (!r.success) throw new UserError(`the manifest of backup ${id} on ${target.uri} does not read as one: ${r.error.issues[0]?.message}`, 422, 'damaged');
  return r.data;
}

/** Make service `b.as` from backup `b.id`; throws a UserError naming what is wrong (a damaged part, a name taken) before anything is made. */
export async function restoreBackup(d: RestoreDeps, b: RestoreRequest): Promise<ServiceView> {
  const db = d.db;
  const known = await recordOf(db, b.id);
  const uri = b.target ?? known?.value.target;
  if (!uri) throw new UserError(`no backup ${b.id} in this cluster: name the target it is on with --target`, 404, 'not_found');
  if (known && known.value.status !== 'complete')
    throw new UserError(`backup ${b.id} is ${known.value.status}: only a complete backup restores`, 409, 'not_complete');
  const target = openTarget(uri, db.store);
  const m = await readManifest(target, b.id);
  await db.linearize();
  if (readService(db.store, b.as)) throw new UserError(`a service named ${b.as} exists already: restore under another name (--as)`, 409, 'exists');
  const key = keyById(db, m.keyId);
  // Every part whole and as the manifest says, before anything is made.
  for (const p of m.parts) {
    const t = new Tally();
    t.resume();
    try {
      await pipeline(target.get(p.key), t);
    } catch (err) {
      throw new UserError(`part ${p.name} of ${p.member} (${p.key}) of backup ${b.id} cannot be read: ${(err as Error).message}`, 422, 'damaged');
    }
    if (t.digest() !== p.sha256)
      throw new UserError(
        `part ${p.name} of ${p.member} (${p.key}) of backup ${b.id} is damaged: its SHA-256 is ${t.digest()}, the manifest says ${p.sha256}; nothing was restored`,
        422,
        'damaged',
      );
  }
  let secrets: Record<string, string>;
  try {
    secrets = JSON.parse(openBytes(key, m.secrets).toString('utf8')) as Record<string, string>;
  } catch {
    throw new UserError(`backup ${b.id}'s secrets do not open with key ${m.keyId}: the manifest is damaged`, 422, 'damaged');
  }
  // The archived log to replay, for a type that archives it: to its end, or to --to-time.
  const live = readService(db.store, String(m.service.spec.name))?.value;
  const source: ArchiveSource | undefined =
    live && m.archive && live.spec.type === m.service.spec.type && m.archive.prefix === archivePrefix(live.spec.name, live.created_at)
      ? {
          flush: () => {
            const c = backupContext(db, d.exec, d.log, live.spec.name);
            return c.type.backup!.archive!.flush(c.svc.spec, c.placed, c.ctx);
          },
        }
      : undefined;
  const archive = m.archive ? await archivePlan(target, m, String(m.service.spec.type), b.toTime, source) : undefined;
  if (b.toTime && !m.archive)
    throw new UserError(`backup ${b.id} has no archived log: it restores only as it was taken (leave out --to-time)`, 400, 'no_archive');
  const old = m.service.spec as ServiceSpecInput;
  const memberIndex = (name: string) => Number(name.slice(name.lastIndexOf('-') + 1));
  const { restore: _, ...kept } = old;
  const { backupSchedule: _s, backupRetention: _r, backupVerify: _v, ...unscheduled } = kept;
  const rest = b.drill ? unscheduled : kept;
  const spec: ServiceSpecInput = {
    ...rest,
    name: b.as,
    restore: {
      backup: m.id,
      target: uri,
      keyId: m.keyId,
      parts: m.parts.map((p) => ({ index: memberIndex(p.member), name: p.name, key: p.key, sha256: p.sha256 })),
      ...(archive ? { archive: archive.objects } : {}),
      ...(b.toTime ? { toTime: new Date(b.toTime).toISOString() } : {}),
    },
  };
  return d.services.create(spec, secrets);
}
