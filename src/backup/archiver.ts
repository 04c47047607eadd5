// The log archive's shipper, on every node: the members this node runs whose
// type archives its log (PostgreSQL's WAL) leave each finished log file in a
// spool directory of their volume; every few seconds this ships each such
// file, sealed as a backup part is, to the target of the service's latest
// backup, and only then removes it. A file is whole in the spool (the archive
// command renames it there), and shipping is idempotent (the same name, the
// same object), so a node that dies between the upload and the removal only
// has the next holder of the volume ship it again.
//
// A service with no backup has nothing its log could be replayed onto: its
// spool is emptied without shipping. The first backup starts the archive (its
// record exists before its base backup begins).
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { MemberSpec } from '../agent/members.ts';
import { readService } from '../catalog/service-records.ts';
import { serviceType } from '../catalog/registry.ts';
import { readKeys } from './keys.ts';
import { archiveKey, archivePrefix, backupsOf, type BackupRecord } from './records.ts';
import { sealing } from './seal.ts';
import { openTarget } from './target.ts';

/** How often the spools are looked at: a finished log file waits at most this long on the member's volume. */
export const archiveShipEveryMs = () => 2000;

export interface ArchiverOptions {
  db: ControlDb;
  log: Logger;
  /** The members running on this node, with where their volume is mounted here. */
  members: () => { spec: MemberSpec; volumeDir?: string }[];
}

export class Archiver {
  private timer?: NodeJS.Timeout;
  private busy = false;
  /** The last failure per service, logged once until it changes. */
  private readonly failing = new Map<string, string>();

  constructor(private readonly o: ArchiverOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.pass(), archiveShipEveryMs());
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The newest backup of a service, of any status: where its log goes. */
  private latestBackup(service: string): BackupRecord | undefined {
    const recs = backupsOf(this.o.db, service).map((r) => r.value);
    return recs.sort((a, b) => (a.created_at < b.created_at ? -1 : 1)).at(-1);
  }

  /** One look at every spool on this node. */
  async pass(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (const { spec, volumeDir } of this.o.members()) {
        if (!volumeDir) continue;
        try {
          await this.ship(spec, volumeDir);
          this.failing.delete(spec.service);
        } catch (err) {
          const why = errorMessage(err);
          if (this.failing.get(spec.service) !== why)
            this.o.log.warn({ service: spec.service, member: spec.name, err: why }, 'log archive: shipping failed; trying again');
          this.failing.set(spec.service, why);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private async ship(spec: MemberSpec, volumeDir: string): Promise<void> {
    const svc = readService(this.o.db.store, spec.service)?.value;
    const archive = svc && serviceType(svc.spec.type).backup?.archive;
    if (!svc || !archive) return;
    const spool = path.join(volumeDir, archive.spool);
    const names = fs.existsSync(spool)
      ? fs
          .readdirSync(spool)
          .filter((n) => !n.startsWith('.'))
          .sort()
      : [];
    if (names.length === 0) return;
    const backup = this.latestBackup(spec.service);
    if (!backup) {
      for (const n of names) fs.rmSync(path.join(spool, n), { force: true });
      return;
    }
    const keys = readKeys(this.o.db);
    if (!keys) return; // the first backup is about to make the key
    const target = openTarget(backup.target, this.o.db.store);
    const prefix = archivePrefix(svc.spec.name, svc.created_at);
    for (const name of names) {
      const file = path.join(spool, name);
      const [compress, encrypt] = sealing(keys.keys[keys.current]);
      await Promise.all([pipeline(fs.createReadStream(file), compress, encrypt), target.put(archiveKey(prefix, name), encrypt)]);
      fs.rmSync(file);
      this.o.log.debug({ service: spec.service, file: name, target: backup.target }, 'log archive: file shipped');
    }
  }
}
