// A part of the backup a service was restored from, read whole by the leader:
// for a type's apply step, from the small parts the leader made itself
// (Kafka's topics and offsets). Checked against the manifest's SHA-256 and
// opened with the cluster's backup key.
import { pipeline } from 'node:stream/promises';
import type { ControlDb } from '../controldb/controldb.ts';
import type { RestoreSource } from '../catalog/types.ts';
import { keyById } from './keys.ts';
import { opening, Tally } from './seal.ts';
import { openTarget } from './target.ts';

export async function readRestoredPart(db: ControlDb, from: RestoreSource, name: string): Promise<Buffer> {
  const part = from.parts.find((p) => p.name === name);
  if (!part) throw new Error(`backup ${from.backup} has no part ${name}`);
  const sealed = new Tally();
  const [decrypt, gunzip] = opening(keyById(db, from.keyId));
  const chunks: Buffer[] = [];
  await pipeline(openTarget(from.target, db.store).get(part.key), sealed, decrypt, gunzip, async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) chunks.push(c);
  });
  if (sealed.digest() !== part.sha256) throw new Error(`part ${name} of backup ${from.backup} (${part.key}) is damaged: its SHA-256 is not the manifest's`);
  return Buffer.concat(chunks);
}
