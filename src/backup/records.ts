// Backups as the controldb keeps them (/backups/<id>: what the cluster
// asked for and how it went) and as their target keeps them (<id>/manifest.json
// beside the parts: all a cluster that never saw the first one needs to list
// and restore them). A backup is complete only once every part is written and
// checked and the manifest is in place.
import crypto from 'node:crypto';
import { z } from 'zod';
import type { ControlDb } from '../controldb/controldb.ts';
import { SECRET_PREFIX } from '../security/tokens.ts';

export const BACKUPS_PREFIX = '/backups/';
export const backupKey = (id: string) => `${BACKUPS_PREFIX}${id}`;
/** The cluster's backup keys by id, and which one new backups use: a secret, never served by the KV API. */
export const BACKUP_KEYS = `${SECRET_PREFIX}backup-keys`;
/** The cluster's default target (a service's spec may name its own). */
export const BACKUP_TARGET = '/_cluster/backup-target';

const partSchema = z
  .object({
    member: z.string(),
    name: z.string(),
    /** The object on the target. */
    key: z.string(),
    /** Sealed: what the target holds, and its SHA-256. */
    bytes: z.number().int().nonnegative(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** The dump before it was sealed. */
    rawBytes: z.number().int().nonnegative(),
  })
  .strict();
export type BackupPart = z.infer<typeof partSchema>;

export const manifestSchema = z
  .object({
    format: z.literal(1),
    id: z.string(),
    /** The service as it was: its spec (type, image, options) and generation. */
    service: z.object({ spec: z.record(z.string(), z.unknown()), generation: z.number().int().nonnegative() }).strict(),
    members: z.array(z.string()),
    /** Which of the cluster's backup keys sealed the parts. */
    keyId: z.string(),
    /** The service's generated secrets (its data was made with them: PostgreSQL's roles), sealed with the key. */
    secrets: z.string(),
    parts: z.array(partSchema),
    /**
     * The service's archived log (PostgreSQL's WAL), under `prefix` on the same target: a restore replays its files
     * from `from` (the first this backup needs) through `through` (closed at `at`, once the backup's data was read: the
     * backup is consistent from then on) at least, to the end of what is archived or to a time.
     */
    archive: z.object({ prefix: z.string(), from: z.string(), through: z.string(), at: z.string() }).strict().optional(),
    started_at: z.string(),
    ended_at: z.string(),
  })
  .strict();
export type Manifest = z.infer<typeof manifestSchema>;

export const backupRecordSchema = z
  .object({
    id: z.string(),
    service: z.string(),
    type: z.string(),
    target: z.string(),
    status: z.enum(['pending', 'running', 'complete', 'failed']),
    message: z.string(),
    /** The leader running it: a running backup whose leader is gone was interrupted. */
    runner: z.string().optional(),
    /** Asked for by the service's schedule. */
    scheduled: z.boolean().optional(),
    /** As in its manifest: where the service's log is archived and the first file this backup needs (retention keeps the log from there). */
    archive: z.object({ prefix: z.string(), from: z.string(), through: z.string(), at: z.string() }).strict().optional(),
    parts: z.array(partSchema),
    /** Sealed bytes in all. */
    bytes: z.number().int().nonnegative(),
    created_at: z.string(),
    started_at: z.string().optional(),
    ended_at: z.string().optional(),
  })
  .strict();
export type BackupRecord = z.infer<typeof backupRecordSchema>;

export const DRILLS_PREFIX = '/backup-drills/';
export const drillKey = (id: string) => `${DRILLS_PREFIX}${id}`;
/** A restore drill: a backup restored into a throwaway service (named as the drill), the type's check run on it, the service removed. */
export const drillRecordSchema = z
  .object({
    id: z.string(),
    backup: z.string(),
    /** The service the backup is of. */
    source: z.string(),
    target: z.string(),
    status: z.enum(['running', 'ok', 'failed']),
    /** What the type's check found (ok), or why the drill failed. */
    summary: z.string(),
    message: z.string(),
    /** Run after a scheduled backup, for a service with --backup-verify. */
    scheduled: z.boolean().optional(),
    /** When a drill still running is given up. */
    deadline: z.string(),
    created_at: z.string(),
    ended_at: z.string().optional(),
    /** When its throwaway service was gone (or never made): the drill left nothing behind. */
    removed_at: z.string().optional(),
  })
  .strict();
export type DrillRecord = z.infer<typeof drillRecordSchema>;

/** Every backup in this cluster's records, with its record's revision (for compare-and-set). */
export const readBackups = (db: ControlDb): { value: BackupRecord; rev: number }[] =>
  db.store
    .range({ key: BACKUPS_PREFIX, prefix: true, limit: 0 })
    .kvs.map((kv) => ({ value: backupRecordSchema.parse(JSON.parse(kv.value)), rev: kv.mod_revision }));

/** A service's backups in this cluster's records. */
export const backupsOf = (db: ControlDb, service: string) => readBackups(db).filter((r) => r.value.service === service);

export const readDrills = (db: ControlDb): { value: DrillRecord; rev: number }[] =>
  db.store
    .range({ key: DRILLS_PREFIX, prefix: true, limit: 0 })
    .kvs.map((kv) => ({ value: drillRecordSchema.parse(JSON.parse(kv.value)), rev: kv.mod_revision }));

export const keysSchema = z.object({ current: z.string(), keys: z.record(z.string(), z.string()) }).strict();
export type BackupKeys = z.infer<typeof keysSchema>;

/** A key's id: the first 16 hex digits of its SHA-256, so a manifest names its key without holding it. */
export const keyId = (key: string) => crypto.createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 16);

/** "<service>-20261207t143012-3fa1": sortable by time within a service, unique across clusters. */
export const newBackupId = (service: string, now = new Date()) =>
  `${service}-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '')
    .toLowerCase()}-${crypto.randomBytes(2).toString('hex')}`;

export const manifestKey = (id: string) => `${id}/manifest.json`;
/**
 * Where a service's archived log goes on its target: one folder per service life (its name and when it was made), so
 * that a service made again under the same name, or a restored one, never mixes its log with another's.
 */
export const archivePrefix = (service: string, createdAt: string) => `wal/${service}-${createdAt.replace(/[^0-9]/g, '').slice(0, 17)}/`;
/**
 * A mark that the log is archived without a gap through file `through` for every commit before `atMs` (the file was
 * closed at that moment, then shipped): what a restore to a moment may count on. An empty object; its key says it all.
 */
export const archiveMarkKey = (prefix: string, through: string, atMs: number) => `${prefix}covered/${through}.${atMs}`;
/** An archived log file's object, sealed as a part is. */
export const archiveKey = (prefix: string, name: string) => `${prefix}${name}.fcb`;
export const partKey = (id: string, member: string, name: string) => `${id}/${member}.${name}.fcb`;
