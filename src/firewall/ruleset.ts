// The node's nftables table, rendered whole from what the controldb says:
// one chain per service with members on this node, reached by every packet
// to those members, accepting the service's sources and dropping the rest.
// Applied as one nft transaction (the table deleted and made again), so a
// packet meets either the old rules or the new ones, never none.

/** A service with members on this node, and who may reach them. */
export interface ServiceWall {
  service: string;
  /** Static IPs of its members here: every packet to them is the service's. */
  ips: string[];
  /** The ports of its members here that have no static IP (they answer on the node's own addresses). */
  ports: number[];
  /** Addresses and networks (canonical CIDRs) whose packets are accepted; everything else to the members is dropped. */
  sources: string[];
}

/** nft identifiers take no "-": service names have no "_", so the mapping cannot collide. */
export const chainOf = (service: string) => `svc_${service.replaceAll('-', '_')}`;

/** The nft script that makes `table` hold exactly these walls (and nothing when there are none). */
export function renderRuleset(table: string, walls: readonly ServiceWall[]): string {
  const lines = [
    // Declared first so that the delete finds it even on the first run: the pair empties the table atomically.
    `table inet ${table}`,
    `delete table inet ${table}`,
  ];
  const guarded = walls.filter((w) => w.ips.length > 0 || w.ports.length > 0);
  if (guarded.length === 0) return `${lines.join('\n')}\n`;
  lines.push(`table inet ${table} {`, '  chain input {', '    type filter hook input priority filter - 5; policy accept;');
  // The node's own traffic (members of one node talking over its addresses arrives on lo) and replies to connections
  // the members opened themselves are not the wall's business: it stands against packets that open or feed a
  // connection to a member.
  lines.push('    iif "lo" accept', '    ct direction reply accept');
  for (const w of guarded) {
    for (const ip of w.ips) lines.push(`    ip daddr ${ip} jump ${chainOf(w.service)}`);
    if (w.ports.length) lines.push(`    meta l4proto { tcp, udp } th dport { ${w.ports.join(', ')} } jump ${chainOf(w.service)}`);
  }
  lines.push('  }');
  for (const w of guarded) {
    lines.push(`  chain ${chainOf(w.service)} {`);
    // One rule per source: an anonymous set refuses overlapping networks, and a list a user gives may overlap.
    for (const s of w.sources) lines.push(`    ip saddr ${s} accept`);
    lines.push('    drop', '  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
