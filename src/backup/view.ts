// What `service get` says of a service's backups: where they go (and plainly
// when that is one node's own disk), its schedule and retention, when the
// next scheduled one runs, and how the last ones went.
import type { ControlDb } from '../controldb/controldb.ts';
import { readNodes } from '../catalog/records.ts';
import type { Service } from '../catalog/types.ts';
import { clusterTarget } from './create.ts';
import { nextScheduled } from './scheduler.ts';
import { backupsOf } from './records.ts';
import { lastDrill } from './drills.ts';

export interface ServiceBackupsView {
  target: string;
  /** Set when the target is one node's own disk on a cluster of several: backups there die with that node. */
  warning: string | null;
  schedule: string | null;
  retention: string | null;
  next_run: string | null;
  last_success: { id: string; at: string } | null;
  last_failure: { id: string; at: string; message: string } | null;
  /** Each scheduled backup is drilled (restored into a throwaway service and checked). */
  verify: boolean;
  /** The newest restore drill of one of its backups: how it went. */
  last_drill: { id: string; backup: string; status: string; summary: string; message: string; at: string } | null;
}

/** The warning a target on the node's own default directory earns on a cluster of `nodes` nodes, or undefined. */
export function localTargetWarning(target: string, defaultTarget: string, nodes: number): string | undefined {
  if (target !== defaultTarget || nodes <= 1) return undefined;
  return `backups go to ${target}, each node's own disk: on a cluster of ${nodes} nodes they die with their node; set a target every node mounts ("firecampd backup target set dir:/shared/backups") or a bucket ("firecampd backup target set s3://bucket/prefix …")`;
}

export function serviceBackupsView(db: ControlDb, svc: Service, defaultTarget: string): ServiceBackupsView {
  const target = svc.spec.backupTarget ?? clusterTarget(db, defaultTarget);
  const mine = backupsOf(db, svc.spec.name)
    .map((r) => r.value)
    .sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  const ok = mine.find((r) => r.status === 'complete');
  const bad = mine.find((r) => r.status === 'failed');
  const drill = lastDrill(db, svc.spec.name);
  return {
    target,
    warning: localTargetWarning(target, defaultTarget, readNodes(db.store).length) ?? null,
    schedule: svc.spec.backupSchedule ?? null,
    retention: svc.spec.backupRetention ?? null,
    next_run: nextScheduled(db, svc)?.toISOString() ?? null,
    last_success: ok ? { id: ok.id, at: ok.ended_at ?? ok.created_at } : null,
    last_failure: bad ? { id: bad.id, at: bad.ended_at ?? bad.created_at, message: bad.message } : null,
    verify: svc.spec.backupVerify ?? false,
    last_drill: drill
      ? { id: drill.id, backup: drill.backup, status: drill.status, summary: drill.summary, message: drill.message, at: drill.ended_at ?? drill.created_at }
      : null,
  };
}
