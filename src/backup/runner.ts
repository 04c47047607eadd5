// The backups reconciler, on the leader, with the catalog's passes: a
// pending backup is taken (compare-and-set to running, naming this leader)
// and made in the background, part by part on the members' nodes; a running
// one whose leader is not this one's job (the leader changed, or restarted)
// was interrupted: its parts are removed and it is marked failed. Never is a
// backup complete before every part is written and read back whole.
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import type { Logger } from '../log.ts';
import { readMembers } from '../catalog/records.ts';
import { backupContext } from './service-context.ts';
import type { MemberExec } from '../catalog/member-exec.ts';
import { storeContentPart, type PartMaker } from './parts.ts';
import { currentKey } from './keys.ts';
import {
  archiveKey,
  archiveMarkKey,
  archivePrefix,
  backupKey,
  backupRecordSchema,
  manifestKey,
  partKey,
  readBackups,
  type BackupPart,
  type BackupRecord,
  type Manifest,
} from './records.ts';
import { sealBytes, Tally } from './seal.ts';
import { openTarget } from './target.ts';

/** How long a backup waits for its last log file to be shipped: the nodes look every 2 s; a slow target gets the rest. */
const archiveWaitMs = () => 120_000;

export interface RunnerOptions {
  db: ControlDb;
  selfId: string;
  log: Logger;
  makePart: PartMaker;
  exec: MemberExec;
}

export class BackupRunner {
  /** The backups this leader is making now. */
  private readonly jobs = new Set<string>();

  constructor(private readonly o: RunnerOptions) {}

  private async put(rec: BackupRecord, rev: number): Promise<boolean> {
    const r = await this.o.db.txn({
      compare: [{ key: backupKey(rec.id), target: 'mod_revision', op: '=', value: rev }],
      success: [{ put: { key: backupKey(rec.id), value: JSON.stringify(rec) } }],
      failure: [],
    });
    return r.succeeded;
  }

  /** One look at every backup; jobs run on in the background. */
  async reconcile(): Promise<void> {
    for (const { value: rec, rev } of readBackups(this.o.db)) {
      if (rec.status === 'pending') {
        const running: BackupRecord = { ...rec, status: 'running', runner: this.o.selfId, message: 'starting', started_at: new Date().toISOString() };
        if (await this.put(running, rev)) this.start(running);
      } else if (rec.status === 'running' && !this.jobs.has(rec.id)) {
        await openTarget(rec.target, this.o.db.store)
          .deletePrefix(`${rec.id}/`)
          .catch(() => {});
        await this.put(
          {
            ...rec,
            status: 'failed',
            message: `interrupted: the leader that ran it (${rec.runner ?? '?'}) stopped leading; its parts are removed`,
            ended_at: new Date().toISOString(),
          },
          rev,
        );
        this.o.log.warn({ backup: rec.id }, 'backup interrupted by a change of leader: marked failed');
      }
    }
  }

  private start(rec: BackupRecord): void {
    this.jobs.add(rec.id);
    void this.run(rec)
      .catch(async (err) => {
        this.o.log.warn({ backup: rec.id, err: errorMessage(err) }, 'backup failed');
        await openTarget(rec.target, this.o.db.store)
          .deletePrefix(`${rec.id}/`)
          .catch(() => {});
        await this.finish(rec.id, { status: 'failed', message: errorMessage(err) }).catch(() => {});
      })
      .finally(() => this.jobs.delete(rec.id));
  }

  /**
   * Change a backup this leader runs. Once another leader marked it failed (this one lost leadership mid-way and
   * did not know), it is not this one's any more: a late job ends as failed, never complete.
   */
  private async update(id: string, patch: Partial<BackupRecord>): Promise<void> {
    const kv = this.o.db.store.get(backupKey(id));
    if (!kv) return;
    const rec = backupRecordSchema.parse(JSON.parse(kv.value));
    if (rec.status !== 'running' || rec.runner !== this.o.selfId) throw new Error(`backup ${id} is no longer this leader's to make (${rec.status})`);
    if (!(await this.put({ ...rec, ...patch }, kv.mod_revision))) throw new Error(`backup ${id} changed meanwhile`);
  }

  private async finish(id: string, patch: Partial<BackupRecord>): Promise<void> {
    await this.update(id, { ...patch, ended_at: new Date().toISOString() });
    const rec = readBackups(this.o.db).find((r) => r.value.id === id)?.value;
    if (rec) void recordEvent(this.o.db, this.o.log, { kind: 'backup', service: rec.service, reason: `${id} ${rec.status}: ${rec.message}` });
  }

  private progress(id: string, message: string): Promise<void> {
    return this.update(id, { message });
  }

  /**
   * The log the backup needs to be consistent, archived: the file being written is closed, and the backup waits
   * until the nodes have shipped it (they look every few seconds). A backup is complete only with its log.
   */
  private async archived(rec: BackupRecord, from: string): Promise<NonNullable<Manifest['archive']>> {
    const { svc, type, placed, ctx } = backupContext(this.o.db, this.o.exec, this.o.log, rec.service);
    const at = new Date();
    const through = await type.backup!.archive!.flush(svc.spec, placed, ctx);
    const prefix = archivePrefix(svc.spec.name, svc.created_at);
    const target = openTarget(rec.target, this.o.db.store);
    await this.progress(rec.id, `waiting for the log through ${through} to reach the archive`);
    const deadline = Date.now() + archiveWaitMs();
    while (!(await target.list(archiveKey(prefix, through))).some((o) => o.key === archiveKey(prefix, through))) {
      if (Date.now() > deadline)
        throw new Error(`the log file ${through} did not reach the archive on ${rec.target} in ${archiveWaitMs() / 1000} s: see the nodes' logs (log archive)`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Every file between the two there, with no gap: else a restore could not make this backup consistent.
    const names = (await target.list(prefix)).map((o) => o.key.slice(prefix.length).replace(/\.fcb$/, ''));
    const { files, gapAfter } = type.backup!.archive!.replay(from, names);
    if (!files.includes(through)) throw new Error(`the archive on ${rec.target} lacks log files between ${from} and ${through} (after ${gapAfter ?? from})`);
    await target.put(archiveMarkKey(prefix, through, at.getTime()), Readable.from([Buffer.alloc(0)]));
    return { prefix, from, through, at: at.toISOString() };
  }

  private async run(rec: BackupRecord): Promise<void> {
    const { svc, type, members, placed, ctx } = backupContext(this.o.db, this.o.exec, this.o.log, rec.service);
    if (!type.backup) throw new Error(`${type.title} services cannot be backed up yet`);
    // Read before the backup starts: the log from here on, archived, makes the backup consistent and carries it to any later moment.
    const logFrom = type.backup.archive ? await type.backup.archive.position(svc.spec, placed, ctx) : undefined;
    const dumps = await type.backup.parts(svc.spec, placed, ctx);
    const { id: keyId, key } = await currentKey(this.o.db);
    const target = openTarget(rec.target, this.o.db.store);
    const parts: BackupPart[] = [];
    for (const [i, d] of dumps.entries()) {
      // The member as it is now: a member that moved since is asked on its new node, at its new epoch.
      const spec = readMembers(this.o.db.store, rec.service).find((m) => m.value.name === d.member)?.value;
      if (!spec) throw new Error(`member ${d.member} is gone`);
      await this.progress(rec.id, `part ${i + 1} of ${dumps.length}: ${d.name} of ${d.member}`);
      const where = { name: d.name, target: rec.target, key: partKey(rec.id, d.member, d.name), keyId };
      const part =
        'content' in d
          ? await storeContentPart(this.o.db, { ...where, member: d.member, content: d.content })
          : await this.o.makePart(spec, { ...where, cmd: d.cmd });
      parts.push(part);
    }
    // Checked: each part read back whole from the target, with the digest its node made while writing it.
    for (const p of parts) {
      const t = new Tally();
      t.resume(); // only counted and hashed
      await pipeline(target.get(p.key), t);
      if (t.digest() !== p.sha256 || t.bytes !== p.bytes)
        throw new Error(`part ${p.name} of ${p.member} reads back as ${t.bytes} bytes with another digest than was written`);
    }
    const archive = logFrom === undefined ? undefined : await this.archived(rec, logFrom);
    const manifest: Manifest = {
      format: 1,
      id: rec.id,
      service: { spec: svc.spec, generation: svc.generation ?? 0 },
      members: members.map((m) => m.name),
      keyId,
      secrets: sealBytes(key, Buffer.from(JSON.stringify(ctx.secrets))),
      parts,
      ...(archive ? { archive } : {}),
      started_at: rec.started_at ?? rec.created_at,
      ended_at: new Date().toISOString(),
    };
    await target.put(manifestKey(rec.id), Readable.from([Buffer.from(JSON.stringify(manifest, null, 2))]));
    const bytes = parts.reduce((n, p) => n + p.bytes, 0);
    await this.finish(rec.id, {
      status: 'complete',
      message: `${parts.length} part${parts.length === 1 ? '' : 's'}, ${bytes} bytes`,
      parts,
      bytes,
      ...(archive ? { archive } : {}),
    });
    this.o.log.info({ backup: rec.id, parts: parts.length, bytes }, 'backup complete');
  }
}
