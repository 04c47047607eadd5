// What the Kafka type's steps share: where a member keeps its files, and how
// the catalog talks to the brokers (a short-lived kafkajs admin client).
import dns from 'node:dns';
import net from 'node:net';
import type { Admin, ISocketFactory } from 'kafkajs';
import type { PlacedMember, TypeContext } from '../../types.ts';

export const KAFKA_PORT = 9092;
export const DATA = '/data';
/** The tools' SASL login, a secret file on each member's volume (kafka-*.sh --command-config). */
export const CLIENT_CONFIG = `${DATA}/firecampd/client.properties`;
export const KAFKA_ADMIN = 'admin';

/**
 * A kafkajs socket factory that finds each broker's address with `resolve`:
 * brokers advertise their DNS names, which the caller's own resolver may not
 * know (the catalog looks them up among the members, a test client asks the
 * nodes' DNS servers), anew on every connection, as a member may have moved.
 */
export function resolvingSocketFactory(resolve: (name: string) => Promise<string>): ISocketFactory {
  return ({ host, port, onConnect }) => {
    const socket = net.connect({
      host,
      port,
      lookup: (name, opts, cb) => {
        resolve(name).then(
          // Node asks for every address (opts.all) when it may try several families.
          (ip) => (opts.all ? (cb as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, [{ address: ip, family: 4 }]) : cb(null, ip, 4)),
          (err: NodeJS.ErrnoException) => cb(err, '', 4),
        );
      },
    });
    socket.once('connect', onConnect);
    socket.setKeepAlive(true, 10_000);
    return socket;
  };
}

/**
 * A short-lived admin client of the cluster. Brokers advertise their DNS
 * names, which the leader's own resolver may not know: each name is looked
 * up among the members' addresses first.
 */
export async function withAdmin<T>(members: PlacedMember[], ctx: TypeContext, fn: (a: Admin) => Promise<T>): Promise<T> {
  // Imported here, not at the top: only the leader's catalog talks to Kafka, and only for a kafka service.
  const { Kafka, logLevel } = await import('kafkajs');
  const kafka = new Kafka({
    clientId: 'firecampd',
    brokers: members.map((m) => `${m.host}:${KAFKA_PORT}`),
    sasl: { mechanism: 'scram-sha-512', username: KAFKA_ADMIN, password: ctx.secrets.admin ?? '' },
    // Generous: brokers that just restarted on a busy machine (JIT, GC) are slow to accept; a short timeout would hold a rollout up for nothing.
    connectionTimeout: 10_000,
    requestTimeout: 15_000,
    retry: { retries: 2, initialRetryTime: 300 },
    logLevel: logLevel.NOTHING,
    socketFactory: resolvingSocketFactory(async (name) => ctx.lookup(name) ?? (await dns.promises.lookup(name, { family: 4 })).address),
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}
