// Where a member goes: a pure choice over the cluster's nodes and the members
// already placed, so that it can be tested on its own and explained.
//
// Hard rules (a node breaking one is out, and the explanation says why):
// the node is live, the member's zone where it is pinned to one, the service's required
// labels, CPU and memory capacity, and no two members on one node answering
// the same port at the node's own address.
// Preferences, in order: not on a node that runs a member of the same group
// (a Redis shard), not in a zone that does, not beside other members of the
// service, in a zone the service uses least, the least loaded node.

export interface NodeInfo {
  id: string;
  name: string;
  zone: string;
  labels: Record<string, string>;
  /** Unknown for nodes that never said (they take anything). */
  capacity?: { cpus: number; memoryMiB: number };
  /** False while the node holds no liveness lease: its agent is not running members. */
  live?: boolean;
}

export interface PlacedMember {
  name: string;
  node: string;
  service: string;
  group: number;
  ip?: string;
  port?: number;
  cpus?: number;
  memoryMiB?: number;
}

export interface Wanted extends Omit<PlacedMember, 'node'> {
  labels?: Record<string, string>;
  /** The only zone the member may run in (its EBS volume or AWS address lives there). */
  zone?: string;
}

export type Placement = { node: string } | { why: string };

/** Why `node` cannot take `want`, or an empty list. */
function refusals(want: Wanted, node: NodeInfo, onNode: PlacedMember[]): string[] {
  if (node.live === false) return ['is not live (no node lease: firecampd is down there, or cannot reach its Docker engine)'];
  const out: string[] = [];
  if (want.zone !== undefined && node.zone !== want.zone) out.push(`is in zone ${node.zone}, and ${want.name}'s volume and address are in zone ${want.zone}`);
  for (const [k, v] of Object.entries(want.labels ?? {})) if (node.labels[k] !== v) out.push(`lacks label ${k}=${v}`);
  if (node.capacity) {
    const cpus = node.capacity.cpus - onNode.reduce((s, m) => s + (m.cpus ?? 0), 0);
    if (want.cpus && want.cpus > cpus) out.push(`has ${round(cpus)} of the ${want.cpus} CPUs it needs free`);
    const mem = node.capacity.memoryMiB - onNode.reduce((s, m) => s + (m.memoryMiB ?? 0), 0);
    if (want.memoryMiB && want.memoryMiB > mem) out.push(`has ${Math.max(0, Math.floor(mem))} of the ${want.memoryMiB} MiB of memory it needs free`);
  }
  if (!want.ip && want.port) {
    const clash = onNode.find((m) => !m.ip && m.port === want.port);
    if (clash)
      out.push(`runs ${clash.name} on port ${want.port} at the node's own address (start firecampd with --ip-pool to give members addresses of their own)`);
  }
  return out;
}

const round = (x: number) => Math.round(x * 100) / 100;

export function place(want: Wanted, nodes: NodeInfo[], placed: PlacedMember[], exclude: ReadonlySet<string> = new Set()): Placement {
  const others = placed.filter((m) => !(m.service === want.service && m.name === want.name));
  const candidates = nodes.filter((n) => !exclude.has(n.id));
  if (candidates.length === 0)
    return { why: nodes.length === 0 ? `no node to run ${want.name} on; waiting for one` : `no node other than the one ${want.name} leaves; waiting for one` };
  const reasons = new Map(
    candidates.map((n) => [
      n.id,
      refusals(
        want,
        n,
        others.filter((m) => m.node === n.id),
      ),
    ]),
  );
  const fit = candidates.filter((n) => reasons.get(n.id)!.length === 0);
  if (fit.length === 0) {
    const detail = [...candidates]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((n) => `${n.name}: ${reasons.get(n.id)!.join(', ')}`)
      .join('; ');
    return { why: `no node can run ${want.name}: ${detail}` };
  }
  const zoneOf = new Map(nodes.map((n) => [n.id, n.zone]));
  const sameGroup = others.filter((m) => m.service === want.service && m.group === want.group);
  const sameService = others.filter((m) => m.service === want.service);
  const score = (n: NodeInfo) => [
    sameGroup.filter((m) => m.node === n.id).length,
    sameGroup.filter((m) => zoneOf.get(m.node) === n.zone).length,
    sameService.filter((m) => m.node === n.id).length,
    sameService.filter((m) => zoneOf.get(m.node) === n.zone).length,
    others.filter((m) => m.node === n.id).length,
  ];
  const ranked = fit
    .map((n) => ({ n, s: score(n) }))
    .sort((a, b) => {
      for (let i = 0; i < a.s.length; i++) if (a.s[i] !== b.s[i]) return a.s[i] - b.s[i];
      return a.n.id.localeCompare(b.n.id);
    });
  return { node: ranked[0].n.id };
}
