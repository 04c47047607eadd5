// Who may reach the members on one node, worked out from the controldb alone
// (level-triggered: any node, any time, gets the same answer from the same
// revision). A service's sources are the cluster's nodes, its own members and
// those of the services that need it, and its access list, or, when it has
// none, the networks of the nodes' own addresses.
import type { MemberSpec } from '../agent/members.ts';
import { readMembers, readNodes, type RecordStore } from '../catalog/records.ts';
import { readServices } from '../catalog/service-records.ts';
import type { NodeRecord } from '../controldb/membership.ts';
import { canonicalCidr, ipv4Of } from './allow.ts';
import type { ServiceWall } from './ruleset.ts';

/** The networks a service without an access list is open to: those of the nodes' addresses (a node that recorded none: its address alone). */
export function defaultNetworks(nodes: readonly NodeRecord[]): string[] {
  const nets = nodes.flatMap((n) => {
    if (n.network) return [n.network];
    const ip = ipv4Of(n.addr);
    return ip ? [canonicalCidr(ip)] : [];
  });
  return [...new Set(nets)].sort();
}

/** The ports a member without a static IP is filtered on: those it declares, or its main port. */
const portsOf = (m: MemberSpec): number[] => m.ports ?? (m.port ? [m.port] : []);

/**
 * The walls of the services with members on `nodeId`: those assigned to it in the store, and `held` (members this
 * node still runs while they move away; their rules go when the member has stopped here).
 */
export function wallsOn(store: RecordStore, nodeId: string, held: readonly MemberSpec[] = []): ServiceWall[] {
  const members = readMembers(store).map((s) => s.value);
  const here = new Map<string, MemberSpec>();
  for (const m of [...held, ...members.filter((m) => m.node === nodeId)]) here.set(`${m.service}/${m.name}`, m);
  if (here.size === 0) return [];
  const nodes = readNodes(store);
  const services = readServices(store).map((s) => s.value.spec);
  const nodeIps = nodes.flatMap((n) => ipv4Of(n.addr) ?? []).map((ip) => canonicalCidr(ip));
  const memberIps = (service: string) => members.filter((m) => m.service === service && m.ip).map((m) => canonicalCidr(m.ip!));
  const byService = new Map<string, MemberSpec[]>();
  for (const m of here.values()) byService.set(m.service, [...(byService.get(m.service) ?? []), m]);
  return [...byService.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([service, ms]) => {
      const spec = services.find((s) => s.name === service);
      const needing = services.filter((s) => Object.values(s.needs ?? {}).includes(service)).map((s) => s.name);
      const sources = [...nodeIps, ...[service, ...needing].flatMap(memberIps), ...(spec?.allow ?? defaultNetworks(nodes))];
      return {
        service,
        ips: [...new Set(ms.flatMap((m) => m.ip ?? []))].sort(),
        ports: [...new Set(ms.filter((m) => !m.ip).flatMap(portsOf))].sort((a, b) => a - b),
        sources: [...new Set(sources)],
      };
    });
}
