// What a node says of the members it runs, on its own /metrics: up, role,
// restarts, moves, the last move's time and replication lag, labelled with
// service, type, member and node. Each node tells of its own members only, so
// that a cluster scraped node by node counts every member once; a member that
// moves is told of by its new node under the same `member` label.
import { Gauge, type Registry } from 'prom-client';
import { readMembers, readRoles, readStatus } from '../catalog/records.ts';
import { readService } from '../catalog/service-records.ts';
import type { RecordStore } from '../catalog/records.ts';
import type { MemberSpec } from '../agent/members.ts';

export interface MemberGaugeSource {
  nodeId: string;
  /** The node's replica of the controldb, once it has one. */
  store(): RecordStore | undefined;
  /** How many times the member restarted on this node: its container's restarts, and the agent's new starts of it. */
  restarts(member: MemberSpec): number;
}

const LABELS = ['service', 'type', 'member', 'node'] as const;

/** One gauge whose series are made afresh at each scrape from `values`: what is gone leaves no stale series. */
export function seriesGauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly string[],
  values: () => [Record<string, string>, number][],
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of values()) this.set(labels, value);
    },
  });
}

export function registerMemberGauges(registry: Registry, src: MemberGaugeSource): void {
  /** This node's members with their labels, read once per gauge per scrape from the local replica (no quorum needed). */
  const mine = () => {
    const store = src.store();
    if (!store) return [];
    return readMembers(store)
      .map((m) => m.value)
      .filter((m) => m.node === src.nodeId && !m.stopped)
      .map((m) => ({ m, store, labels: { service: m.service, type: readService(store, m.service)?.value.spec.type ?? '', member: m.name, node: src.nodeId } }));
  };
  seriesGauge(registry, 'firecampd_member_up', '1 if the member runs here and its health check (where it has one) does not fail', LABELS, () =>
    mine().map(({ m, store, labels }) => {
      const st = readStatus(store, m.service, m.name);
      return [labels, st?.node === src.nodeId && st.epoch === m.epoch && st.state === 'running' && st.health !== 'unhealthy' ? 1 : 0];
    }),
  );
  seriesGauge(registry, 'firecampd_member_role', "1 for the member's role in its service, as the catalog last saw it", [...LABELS, 'role'], () =>
    mine().flatMap(({ m, store, labels }) => {
      const role = readRoles(store, m.service)[m.name]?.role;
      return role ? [[{ ...labels, role }, 1] as [Record<string, string>, number]] : [];
    }),
  );
  seriesGauge(registry, 'firecampd_member_replication_lag_bytes', 'How far the member is behind, where its type replicates', LABELS, () =>
    mine().flatMap(({ m, store, labels }) => {
      const lag = readRoles(store, m.service)[m.name]?.lagBytes;
      return lag === undefined ? [] : [[labels, lag] as [Record<string, string>, number]];
    }),
  );
  seriesGauge(registry, 'firecampd_member_restarts', 'Restarts of the member on this node since this daemon started', LABELS, () =>
    mine().map(({ m, labels }) => [labels, src.restarts(m)]),
  );
  seriesGauge(registry, 'firecampd_member_moves', 'How many times the member moved off a node whose lease expired', LABELS, () =>
    mine().map(({ m, labels }) => [labels, m.moves ?? 0]),
  );
  seriesGauge(registry, 'firecampd_member_last_move_timestamp_seconds', 'When the member last moved off a node whose lease expired', LABELS, () =>
    mine().flatMap(({ m, labels }) => (m.movedAt ? [[labels, Date.parse(m.movedAt) / 1000] as [Record<string, string>, number]] : [])),
  );
}
