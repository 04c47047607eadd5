// The cluster's backup keys: one that new backups are sealed with, and any
// imported from another cluster to open its backups. Kept as a secret (never
// served by the KV API); `backup key export` prints the current one for
// safekeeping, and a new cluster takes it with `backup key import`.
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { BACKUP_KEYS, keyId, keysSchema, type BackupKeys } from './records.ts';
import { keyBytes, newBackupKey } from './seal.ts';

export function readKeys(db: ControlDb): BackupKeys | undefined {
  const kv = db.store.get(BACKUP_KEYS);
  return kv ? keysSchema.parse(JSON.parse(kv.value)) : undefined;
}

/** The key of that id, from this node's replica; throws naming what to import when the cluster lacks it. */
export function keyById(db: ControlDb, id: string): string {
  const key = readKeys(db)?.keys[id];
  if (!key)
    throw new UserError(
      `this cluster lacks backup key ${id}: import the key of the cluster that made the backup ("firecampd backup key import KEY")`,
      409,
      'no_key',
    );
  return key;
}

/** The key new backups are sealed with, made on first use (create-if-absent: two nodes at once make one). */
export async function currentKey(db: ControlDb): Promise<{ id: string; key: string }> {
  await db.linearize();
  let keys = readKeys(db);
  if (!keys) {
    const key = newBackupKey();
    const fresh: BackupKeys = { current: keyId(key), keys: { [keyId(key)]: key } };
    await db.txn({
      compare: [{ key: BACKUP_KEYS, target: 'exists', op: '=', value: false }],
      success: [{ put: { key: BACKUP_KEYS, value: JSON.stringify(fresh) } }],
      failure: [],
    });
    await db.linearize();
    keys = readKeys(db)!;
  }
  return { id: keys.current, key: keys.keys[keys.current] };
}

/** Add another cluster's key, so that its backups open here; a cluster that has none takes it as its own. */
export async function importKey(db: ControlDb, key: string): Promise<{ id: string; current: boolean }> {
  try {
    keyBytes(key);
  } catch (err) {
    throw new UserError(`backup key import: ${(err as Error).message} (as "firecampd backup key export" prints it)`);
  }
  const id = keyId(key);
  for (let attempt = 0; attempt < 5; attempt++) {
    await db.linearize();
    const kv = db.store.get(BACKUP_KEYS);
    const keys: BackupKeys = kv ? keysSchema.parse(JSON.parse(kv.value)) : { current: id, keys: {} };
    if (keys.keys[id]) return { id, current: keys.current === id };
    const next: BackupKeys = { current: keys.current, keys: { ...keys.keys, [id]: key } };
    const r = await db.txn({
      compare: [
        kv ? { key: BACKUP_KEYS, target: 'mod_revision', op: '=', value: kv.mod_revision } : { key: BACKUP_KEYS, target: 'exists', op: '=', value: false },
      ],
      success: [{ put: { key: BACKUP_KEYS, value: JSON.stringify(next) } }],
      failure: [],
    });
    if (r.succeeded) return { id, current: next.current === id };
  }
  throw new UserError('backup key import: the keys changed meanwhile five times; try again', 409, 'conflict');
}
