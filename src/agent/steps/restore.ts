// Restore: a member of a service made by `backup restore` starts from the
// backup. Before its first start, each of its parts is fetched from the
// target, checked against the manifest's SHA-256, opened with the cluster's
// backup key and written at its path in the volume; then the type's files;
// then a marker naming the backup. With the marker there (the volume moves
// with the member), nothing happens again.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { keyById } from '../../backup/keys.ts';
import { opening, Tally } from '../../backup/seal.ts';
import { commitFile } from '../../fsync.ts';
import { openTarget } from '../../backup/target.ts';
import { ownerOf, type MemberSpec } from '../members.ts';
import type { MemberStep } from './step.ts';

const MARKER = '.firecampd-restored';

/** Fetch, check and open one part into `file`; throws naming the part when it is damaged. */
async function restorePart(
  key: string,
  target: string,
  part: NonNullable<MemberSpec['restore']>['parts'][number],
  file: string,
  backup: string,
): Promise<void> {
  const tmp = `${file}.partial`;
  const sealed = new Tally();
  const [decrypt, gunzip] = opening(key);
  try {
    await pipeline(openTarget(target).get(part.key), sealed, decrypt, gunzip, fs.createWriteStream(tmp));
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    const digest = sealed.digest();
    if (digest !== part.sha256)
      throw new Error(`part ${part.name} of backup ${backup} (${part.key}) is damaged: its SHA-256 is ${digest}, the manifest says ${part.sha256}`, {
        cause: err,
      });
    throw new Error(`part ${part.name} of backup ${backup} (${part.key}) could not be restored: ${(err as Error).message}`, { cause: err });
  }
  const digest = sealed.digest();
  if (digest !== part.sha256) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`part ${part.name} of backup ${backup} (${part.key}) is damaged: its SHA-256 is ${digest}, the manifest says ${part.sha256}`);
  }
  commitFile(tmp, file);
}

export const restore: MemberStep = {
  name: 'restore',
  async start(node, { spec, volumeDir }) {
    const r = spec.restore;
    if (!r || !volumeDir) return true;
    const marker = path.join(volumeDir, MARKER);
    if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === r.backup) return true;
    const key = keyById(node.db, r.keyId);
    const owner = ownerOf(spec);
    const place = (rel: string) => {
      const file = path.join(volumeDir, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      if (owner) fs.chownSync(path.dirname(file), owner.uid, owner.gid);
      return file;
    };
    await node.report(spec, 'starting', `restoring from backup ${r.backup}`);
    for (const part of r.parts) {
      const file = place(part.path);
      await restorePart(key, r.target, part, file, r.backup);
      if (owner) fs.chownSync(file, owner.uid, owner.gid);
    }
    for (const f of r.files) {
      const file = place(f.path);
      fs.writeFileSync(file, f.content);
      if (owner) fs.chownSync(file, owner.uid, owner.gid);
    }
    fs.writeFileSync(marker, r.backup + '\n');
    node.log.info({ member: `${spec.service}/${spec.name}`, backup: r.backup, parts: r.parts.length }, 'member restored from a backup');
    return true;
  },
};
