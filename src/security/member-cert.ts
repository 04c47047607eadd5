// Members' certificates: what they hold and when they are renewed. Timing
// rules are named here as functions, as the lease's are, so that a reader
// (and a test) finds each in one place.
import type { MemberSpec } from '../agent/members.ts';
import { certificateFacts } from './pki.ts';

const HOUR_MS = 3_600_000;

/** The files in the member's `tls.dir`, as the type's config names them. */
export const CERT_FILE = 'server.crt';
export const KEY_FILE = 'server.key';
export const CA_FILE = 'ca.crt';

/** How long a member's certificate lasts: the spec's, or a year. */
export const certificateLifetimeMs = (tls: NonNullable<MemberSpec['tls']>): number => (tls.lifetimeHours ?? 365 * 24) * HOUR_MS;

/** The catalog restarts a service for its certificates once one has less than a third of its life left. */
export const renewalDue = (notAfter: Date, lifetimeMs: number, now: number): boolean => notAfter.getTime() - now < lifetimeMs / 3;

/**
 * A member's start makes it a new certificate once less than half of its life is left: earlier than the catalog's
 * rule, so that the restart it asks for renews every member made about the same time (not only the first one due),
 * and a node whose clock is a little behind the leader's renews all the same (else the restart would renew nothing,
 * and come again).
 */
export const renewsAtStart = (notAfter: Date, lifetimeMs: number, now: number): boolean => notAfter.getTime() - now < lifetimeMs / 2;

/** The names a member's certificate must hold: its DNS name, its address, and the names clients dial it by. */
export function certificateHosts(spec: MemberSpec, nodeIp: string): string[] {
  return [...new Set([...(spec.dnsName ? [spec.dnsName] : []), spec.ip ?? nodeIp, ...(spec.tls?.names ?? []), 'localhost', '127.0.0.1'])];
}

/** Why the certificate in hand will not do (and a new one is needed), or undefined when it will. */
export function whyRenew(certPem: string | undefined, caPem: string, hosts: readonly string[], lifetimeMs: number, now: number): string | undefined {
  if (!certPem) return 'none yet';
  let facts: ReturnType<typeof certificateFacts>;
  try {
    facts = certificateFacts(certPem, caPem);
  } catch {
    return 'unreadable';
  }
  if (!facts.issuedByCa) return "not signed by the cluster's CA";
  const missing = hosts.filter((h) => !facts.hosts.includes(h));
  if (missing.length) return `lacks ${missing.join(', ')}`;
  if (renewsAtStart(facts.notAfter, lifetimeMs, now)) return `ends ${facts.notAfter.toISOString()}`;
  return undefined;
}
