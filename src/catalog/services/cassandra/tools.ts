// What the Cassandra type's steps share: where a member keeps its files, and
// the two ways the catalog talks to a member (nodetool in its container, CQL
// at its address).
import type { Client } from 'cassandra-driver';
import { execOk } from '../../member-exec.ts';
import type { PlacedMember, TypeContext } from '../../types.ts';

export const CQL_PORT = 9042;
export const DATA = '/var/lib/cassandra';
/** What the member and the catalog's steps write, as the member's user: rack and datacenter, the bootstrap go, cleanup marks. */
export const STATE = `${DATA}/member`;
export const CASSANDRA_ADMIN = 'admin';

/**
 * The member's JMX port, on loopback only (nodetool runs inside its
 * container). Members of host networking share their node's loopback, so
 * each needs a port of its own: one from its static IP, which no other
 * member has (two collide only if their IPs are 800 apart, a pool wider than
 * any a node holds).
 */
export function jmxPort(ip: string): number {
  const n = ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  return 7200 + (n % 800);
}

/** nodetool in the member's container, against that member. */
export const nodetool = (m: PlacedMember, ctx: TypeContext, args: string[], timeoutMs = 60_000) =>
  execOk(ctx.exec, m.spec, ['nodetool', '-p', String(jmxPort(m.spec.ip!)), ...args], { timeoutMs });

/** A CQL session as `user`, reaching the members at their addresses; closed after `fn`. */
export async function withCql<T>(members: PlacedMember[], user: string, password: string, fn: (c: Client) => Promise<T>): Promise<T> {
  // Imported here, not at the top: only the leader's catalog talks CQL, and only for a cassandra service.
  const { Client, auth, policies } = (await import('cassandra-driver')).default;
  const client = new Client({
    contactPoints: members.map((m) => `${m.host}:${CQL_PORT}`),
    authProvider: new auth.PlainTextAuthProvider(user, password),
    // Any datacenter will do for the catalog's few statements: no local one to name.
    policies: { loadBalancing: new policies.loadBalancing.RoundRobinPolicy() },
    socketOptions: { connectTimeout: 10_000, readTimeout: 60_000 },
  });
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.shutdown().catch(() => {});
  }
}
