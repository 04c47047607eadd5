// A service's access list: the networks, besides the cluster's own nodes and
// the service's members, whose packets reach its members. Parsed and put in
// canonical form (network address, prefix) here, once, so that the rules,
// `service get` and a change's "nothing changed" all compare the same text.
import ipaddr from 'ipaddr.js';
import { UserError } from '../errors.ts';

/** `10.1.2.3/16` → `10.1.0.0/16`; a bare address is a /32. Throws UserError naming the entry and what to write. */
export function canonicalCidr(entry: string): string {
  const text = entry.trim();
  const withPrefix = text.includes('/') ? text : `${text}/32`;
  // Four parts: ipaddr.js also takes the old short forms (10.1/8), which nobody means in an access list.
  if (!ipaddr.IPv4.isValidCIDR(withPrefix) || !ipaddr.IPv4.isValidFourPartDecimal(withPrefix.split('/')[0]))
    throw new UserError(`--allow: "${entry}" is not an IPv4 network; write it as ADDRESS/PREFIX (10.0.0.0/16) or an address (203.0.113.7)`);
  const network = ipaddr.IPv4.networkAddressFromCIDR(withPrefix).toString();
  return `${network}/${withPrefix.split('/')[1]}`;
}

/** An access list as a user gives it (repeated or comma-separated), canonical, without duplicates, in a stable order. */
export function parseAllow(entries: readonly string[]): string[] {
  const list = entries.flatMap((e) => e.split(',')).filter((e) => e.trim() !== '');
  if (list.length === 0) throw new UserError('--allow: give at least one network (ADDRESS/PREFIX), or "default" for the networks of the cluster\'s nodes');
  return [...new Set(list.map(canonicalCidr))].sort(compareCidr);
}

function compareCidr(a: string, b: string): number {
  const [na, pa] = ipaddr.IPv4.parseCIDR(a);
  const [nb, pb] = ipaddr.IPv4.parseCIDR(b);
  const x = na.toByteArray();
  const y = nb.toByteArray();
  for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return pa - pb;
}

/** The network an interface address belongs to: `10.77.0.11` with prefix 24 → `10.77.0.0/24`. */
export const networkOf = (ip: string, prefix: number): string => canonicalCidr(`${ip}/${prefix}`);

/** The host part of an `addr` of a node record (`10.0.0.5:27040`), if it is an IPv4 address. */
export function ipv4Of(addr: string): string | undefined {
  const host = addr.slice(0, addr.lastIndexOf(':'));
  return ipaddr.IPv4.isValidFourPartDecimal(host) ? host : undefined;
}
