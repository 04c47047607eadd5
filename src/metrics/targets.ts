// Prometheus HTTP service discovery: GET /v1/prometheus/targets lists every
// member's metrics endpoint (its own, or its exporter's) in the http_sd JSON
// Prometheus reads, labelled with service, type, member, role, node and zone.
// Any node answers from its replica; a scrape config names one URL that
// reaches a live node (api.<domain>), since Prometheus keeps a silent
// source's last answer. The API's token and CA guard it as the rest of the
// API (docs/observability.md).
import type { ApiServer } from '../api/server.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { readMembers, readNodes, readRoles, type RecordStore } from '../catalog/records.ts';
import { readService } from '../catalog/service-records.ts';

/** One target group of http_sd: here, one member. */
export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

/** Every member with a metrics endpoint, where it runs now. */
export function memberTargets(store: RecordStore): TargetGroup[] {
  const nodes = new Map(readNodes(store).map((n) => [n.id, n]));
  const groups: TargetGroup[] = [];
  for (const { value: m } of readMembers(store)) {
    if (!m.metrics || m.stopped) continue;
    const node = nodes.get(m.node);
    // A member without a static IP answers on its node's address.
    const host = m.ip ?? node?.addr.replace(/:\d+$/, '');
    if (!host) continue;
    const role = readRoles(store, m.service)[m.name]?.role;
    groups.push({
      targets: [`${host}:${m.metrics.port}`],
      labels: {
        __metrics_path__: m.metrics.path ?? '/metrics',
        service: m.service,
        type: readService(store, m.service)?.value.spec.type ?? '',
        member: m.name,
        node: m.node,
        zone: node?.zone ?? '',
        ...(role ? { role } : {}),
      },
    });
  }
  return groups;
}

export function registerTargetRoutes(api: ApiServer, db: ControlDb): void {
  api.route('GET', '/v1/prometheus/targets', () => memberTargets(db.store));
}
