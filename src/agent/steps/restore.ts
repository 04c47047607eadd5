// Restore: a member of a service made by `backup restore` starts from the
// backup. Before its first start, each of its parts is fetched from the
// target, checked against the manifest's SHA-256, opened with the cluster's
// backup key and written at its path in the volume (a tar part unpacked into
// its directory, as it streams); then the archived log's files the service
// replays; then the type's files; then a marker naming the backup. With the
// marker there (the volume moves with the member), nothing happens again.
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { x as untar } from 'tar';
import { keyById } from '../../backup/keys.ts';
import { opening, Tally } from '../../backup/seal.ts';
import { commitFile } from '../../fsync.ts';
import { openTarget, type BackupTarget } from '../../backup/target.ts';
import { ownerOf, type MemberSpec } from '../members.ts';
import type { MemberStep } from './step.ts';

const MARKER = '.firecampd-restored';
type Restore = NonNullable<MemberSpec['restore']>;
type Owner = ReturnType<typeof ownerOf>;

const damaged = (part: Restore['parts'][number], backup: string, digest: string) =>
  `part ${part.name} of backup ${backup} (${part.key}) is damaged: its SHA-256 is ${digest}, the manifest says ${part.sha256}`;

/** Fetch, check and open one part into `dest` (a file, or a directory it unpacks into); throws naming the part when it is damaged. */
async function restorePart(key: string, target: BackupTarget, part: Restore['parts'][number], dest: string, backup: string, owner: Owner): Promise<void> {
  const tmp = `${dest}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const sealed = new Tally();
  const [decrypt, gunzip] = opening(key);
  try {
    if (part.unpack === 'tar') {
      fs.mkdirSync(tmp, { mode: 0o700 });
      if (owner) fs.chownSync(tmp, owner.uid, owner.gid);
      // Every entry, and every directory made on the way to one (a part may hold deep paths only: a snapshot's tables),
      // the member's user's; with no user of its own, as the archive has them.
      const owned = owner ? { uid: owner.uid, gid: owner.gid, preserveOwner: false } : {};
      await pipeline(target.get(part.key), sealed, decrypt, gunzip, untar({ cwd: tmp, strict: true, ...owned }));
    } else {
      await pipeline(target.get(part.key), sealed, decrypt, gunzip, fs.createWriteStream(tmp));
    }
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const digest = sealed.digest();
    if (digest !== part.sha256) throw new Error(damaged(part, backup, digest), { cause: err });
    throw new Error(`part ${part.name} of backup ${backup} (${part.key}) could not be restored: ${(err as Error).message}`, { cause: err });
  }
  const digest = sealed.digest();
  if (digest !== part.sha256) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(damaged(part, backup, digest));
  }
  fs.rmSync(dest, { recursive: true, force: true });
  if (part.unpack === 'tar') fs.renameSync(tmp, dest);
  else commitFile(tmp, dest);
}

/** Fetch and open the archived log's files into `dir`; an object that does not open (AES-GCM checks each) is named. */
async function restoreArchive(key: string, target: BackupTarget, archive: NonNullable<Restore['archive']>, dir: string, owner: Owner): Promise<void> {
  for (const o of archive.objects) {
    const file = path.join(dir, o.name);
    if (fs.existsSync(file)) continue; // fetched before a restart of this step
    const [decrypt, gunzip] = opening(key);
    try {
      await pipeline(target.get(o.key), decrypt, gunzip, fs.createWriteStream(`${file}.partial`));
    } catch (err) {
      fs.rmSync(`${file}.partial`, { force: true });
      throw new Error(`archived log file ${o.name} (${o.key} on ${target.uri}) could not be restored: ${(err as Error).message}`, { cause: err });
    }
    commitFile(`${file}.partial`, file);
    if (owner) fs.chownSync(file, owner.uid, owner.gid);
  }
}

export const restore: MemberStep = {
  name: 'restore',
  async start(node, { spec, volumeDir }) {
    const r = spec.restore;
    if (!r || !volumeDir) return true;
    const marker = path.join(volumeDir, MARKER);
    if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8').trim() === r.backup) return true;
    const key = keyById(node.db, r.keyId);
    const target = openTarget(r.target, node.db.store);
    const owner = ownerOf(spec);
    const place = (rel: string) => {
      const file = path.join(volumeDir, rel);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      if (owner) fs.chownSync(path.dirname(file), owner.uid, owner.gid);
      return file;
    };
    await node.report(spec, 'starting', `restoring from backup ${r.backup}`);
    for (const part of r.parts) {
      const dest = place(part.path);
      await restorePart(key, target, part, dest, r.backup, owner);
      if (owner) fs.chownSync(dest, owner.uid, owner.gid);
    }
    if (r.archive) {
      const dir = path.join(volumeDir, r.archive.path);
      fs.mkdirSync(dir, { recursive: true });
      if (owner) fs.chownSync(dir, owner.uid, owner.gid);
      await node.report(spec, 'starting', `restoring from backup ${r.backup}: ${r.archive.objects.length} archived log files`);
      await restoreArchive(key, target, r.archive, dir, owner);
    }
    for (const f of r.files) {
      const file = place(f.path);
      fs.writeFileSync(file, f.content);
      if (owner) fs.chownSync(file, owner.uid, owner.gid);
    }
    fs.writeFileSync(marker, r.backup + '\n');
    node.log.info(
      { member: `${spec.service}/${spec.name}`, backup: r.backup, parts: r.parts.length, archived: r.archive?.objects.length ?? 0 },
      'member restored from a backup',
    );
    return true;
  },
};
