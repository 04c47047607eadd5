// What every node says of the cluster as its replica holds it: whether each
// node's liveness lease is held, and when each service's last backup
// completed. Every node tells the same, so that the figures outlive any one
// node; alert rules take the min or max over the nodes that answer
// (monitoring/alerts.yml).
import type { Registry } from 'prom-client';
import { ALIVE_PREFIX } from '../agent/members.ts';
import { BACKUPS_PREFIX, backupRecordSchema } from '../backup/records.ts';
import { all, readNodes, type RecordStore } from '../catalog/records.ts';
import { readServices } from '../catalog/service-records.ts';
import { seriesGauge } from './members.ts';

export function registerClusterGauges(registry: Registry, store: () => RecordStore | undefined): void {
  seriesGauge(
    registry,
    'firecampd_node_lease_held',
    "1 while the node's liveness lease is held; 0 once it expired (its members move)",
    ['node', 'name', 'zone'],
    () => {
      const s = store();
      if (!s) return [];
      return readNodes(s).map((n) => [{ node: n.id, name: n.name, zone: n.zone }, s.get(ALIVE_PREFIX + n.id) ? 1 : 0]);
    },
  );
  seriesGauge(
    registry,
    'firecampd_service_last_backup_timestamp_seconds',
    "When the service's newest complete backup ended; no series for a service never backed up",
    ['service', 'type'],
    () => {
      const s = store();
      if (!s) return [];
      const newest = new Map<string, number>();
      for (const kv of all(s, BACKUPS_PREFIX)) {
        const b = backupRecordSchema.parse(JSON.parse(kv.value));
        if (b.status !== 'complete' || !b.ended_at) continue;
        newest.set(b.service, Math.max(newest.get(b.service) ?? 0, Date.parse(b.ended_at) / 1000));
      }
      return readServices(s).flatMap(({ value: svc }) => {
        const at = newest.get(svc.spec.name);
        return at === undefined ? [] : [[{ service: svc.spec.name, type: svc.spec.type }, at] as [Record<string, string>, number]];
      });
    },
  );
}
