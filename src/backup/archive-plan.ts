// Which archived log files a restore replays, and what moments it can reach:
// from the moment the backup is consistent to the latest mark of the archive
// (a file closed at a known moment, then shipped, with no gap before it: the
// backup makes one, and so does a restore that closes the live service's
// file). When a file was shipped says nothing of when its last commit was,
// so only marks count. A `--to-time` outside that is refused, naming the
// range. When the backed-up service still runs in this cluster, its current
// log file is closed first, so that the range reaches the moment of asking.
import { UserError } from '../errors.ts';
import { serviceType } from '../catalog/registry.ts';
import { Readable } from 'node:stream';
import { z } from 'zod';
import { archiveKey, archiveMarkKey, type Manifest } from './records.ts';
import type { BackupTarget, TargetObject } from './target.ts';

/** The backed-up service, when it runs here still: close its log file now (the file's name). */
export interface ArchiveSource {
  flush(): Promise<string>;
}

export interface ArchivePlan {
  objects: { key: string; name: string }[];
  /** The moments a restore can reach: the base backup's end, and the time of the last contiguous file archived. */
  covers: { from: string; to: string };
}

/** How long a restore waits for the log file it closed to reach the archive (the nodes ship every few seconds). */
const flushWaitMs = () => 60_000;

async function look(target: BackupTarget, m: Manifest, type: string): Promise<ArchivePlan & { names: Set<string> }> {
  const archive = serviceType(type).backup?.archive;
  if (!archive || !m.archive) throw new Error(`${type} keeps no archived log`);
  const prefix = m.archive.prefix;
  const objects = new Map<string, TargetObject>();
  for (const o of await target.list(prefix)) if (o.key.endsWith('.fcb')) objects.set(o.key.slice(prefix.length, -'.fcb'.length), o);
  const { files, gapAfter } = archive.replay(m.archive.from, [...objects.keys()]);
  if (!files.includes(m.archive.through))
    throw new UserError(
      `backup ${m.id} needs the archived log from ${m.archive.from} through ${m.archive.through} to be consistent, and ${target.uri} lacks ${gapAfter ? `what follows ${gapAfter}` : m.archive.from}: it cannot be restored`,
      422,
      'damaged',
    );
  const replayed = new Set(files);
  let last = Date.parse(m.archive.at);
  for (const o of await target.list(`${prefix}covered/`)) {
    const mark = o.key.slice(`${prefix}covered/`.length);
    const dot = mark.lastIndexOf('.');
    if (replayed.has(mark.slice(0, dot))) last = Math.max(last, Number(mark.slice(dot + 1)));
  }
  return {
    objects: files.map((n) => ({ key: objects.get(n)!.key, name: n })),
    covers: { from: m.archive.at, to: new Date(last).toISOString() },
    names: new Set(objects.keys()),
  };
}

export async function archivePlan(target: BackupTarget, m: Manifest, type: string, toTime?: string, source?: ArchiveSource): Promise<ArchivePlan> {
  const t = toTime === undefined ? undefined : Date.parse(toTime);
  // As the restored spec's toTime is checked (src/catalog/spec.ts): an RFC 3339 time with its offset.
  if (toTime !== undefined && !z.string().datetime({ offset: true }).safeParse(toTime).success)
    throw new UserError(`--to-time ${toTime}: not an RFC 3339 time (such as 2026-12-07T14:30:00Z)`, 400, 'bad_time');
  let plan = await look(target, m, type);
  if (source && (t === undefined || t > Date.parse(plan.covers.to))) {
    const at = Date.now();
    const closed = await source.flush();
    const deadline = Date.now() + flushWaitMs();
    // Only the closed file's own object is looked for while waiting: the archive may hold thousands.
    const shipped = async () => (await target.list(archiveKey(m.archive!.prefix, closed))).length > 0;
    let arrived = plan.names.has(closed) || (await shipped());
    while (!arrived && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      arrived = await shipped();
    }
    if (arrived) {
      await target.put(archiveMarkKey(m.archive!.prefix, closed, at), Readable.from([Buffer.alloc(0)]));
      plan = await look(target, m, type);
    }
  }
  if (t !== undefined && (t < Date.parse(plan.covers.from) || t > Date.parse(plan.covers.to)))
    throw new UserError(
      `--to-time ${toTime} is outside what backup ${m.id} and its archived log cover: ${plan.covers.from} to ${plan.covers.to}` +
        (t > Date.parse(plan.covers.to)
          ? ' (a later moment needs the log archived since; a later backup may cover it)'
          : ' (an earlier moment needs an earlier backup)'),
      400,
      'out_of_range',
    );
  return { objects: plan.objects, covers: plan.covers };
}
