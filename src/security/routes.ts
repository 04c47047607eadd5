// HTTP routes for the cluster CA, joining, and tokens.
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import { nodeRecordSchema } from '../controldb/cluster-routes.ts';
import type { ControlDb, Forwarder } from '../controldb/controldb.ts';
import type { Membership } from '../controldb/membership.ts';
import { UserError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { parseHostPort } from '../config.ts';
import { caDigest, clusterApiName, issueNodeCert, publicKeyDigest } from './pki.ts';
import type { Tokens } from './tokens.ts';

const joinBody = nodeRecordSchema
  .omit({ key: true })
  .extend({ public_key: z.string().min(1).max(4096) })
  .strict();
const createBody = z
  .object({
    kind: z.enum(['join', 'api']),
    ttl: z
      .number()
      .int()
      .positive()
      .max(10 * 365 * 86400)
      .optional(),
    description: z.string().max(200).optional(),
  })
  .strict();
const revokeBody = z.object({ id: z.string().min(1).max(64) }).strict();

export interface SecurityDeps {
  db: ControlDb;
  tokens: Tokens;
  membership: Membership;
  caPem: string;
  /** The cluster's DNS domain: a joining node's certificate carries the cluster's API name in it too (clusterApiName). */
  domain: string;
  forward: Forwarder;
  log: Logger;
}

export function registerSecurityRoutes(api: ApiServer, d: SecurityDeps): void {
  // The CA certificate is public: a joining node or a CLI fetches it and checks its digest against its token.
  api.route('GET', '/v1/cluster/ca', () => ({ ca: d.caPem, digest: caDigest(d.caPem) }), 'public');

  api.route(
    'POST',
    '/v1/cluster/join',
    async (req) => {
      const body = parseBody(joinBody, req.body);
      const key = publicKeyDigest(body.public_key);
      if (d.membership.wasRemoved(body.id)) {
        throw new UserError(`node id ${body.id} was removed from this cluster; join with an empty data dir`, 409, 'conflict');
      }
      const known = d.membership.record(body.id);
      if (known && known.key !== key) {
        throw new UserError(`node id ${body.id} belongs to another node of this cluster; join with an empty data dir`, 409, 'conflict');
      }
      const ca = d.tokens.ca();
      if (!ca) throw new UserError('the cluster is still initializing; retry shortly', 503, 'unavailable');
      const host = parseHostPort(body.addr, 0, 'addr', true).host;
      const cert = await issueNodeCert(ca, { nodeId: body.id, publicKeyPem: body.public_key, hosts: [host, body.name, clusterApiName(d.domain)] });
      const { members } = await d.membership.join({ id: body.id, name: body.name, addr: body.addr, zone: body.zone, key });
      d.log.info(
        { node: body.id, addr: body.addr, token_id: req.caller.kind === 'join' ? req.caller.id : undefined },
        'signed a certificate for a joining node',
      );
      return { members, cert, ca: ca.certPem };
    },
    'join',
  );

  api.route('GET', '/v1/tokens', () => ({ tokens: d.tokens.list() }));
  api.route('GET', '/v1/tokens/join', () => ({ token: d.tokens.joinToken() }));
  api.route('POST', '/v1/tokens', async (req) => {
    const b = parseBody(createBody, req.body);
    return d.tokens.create(b.kind, { ttlSeconds: b.ttl, description: b.description });
  });
  api.route('POST', '/v1/tokens/revoke', async (req) => {
    const id = parseBody(revokeBody, req.body).id;
    const revision = await d.tokens.revoke(id);
    return { revoked: id, revision, unconfirmed: await everyNodeAt(d, revision) };
  });
  api.route('POST', '/v1/tokens/rotate', async () => {
    const r = await d.tokens.rotate();
    return { ...r, unconfirmed: await everyNodeAt(d, r.revision) };
  });

  // Answers once this node's replica has reached a revision (or after 2 s).
  api.route(
    'GET',
    '/v1/cluster/caught-up',
    async (req) => {
      return { revision: await untilApplied(d.db, Number(req.query.get('revision')), Date.now() + 2000) };
    },
    'peer',
  );
}

/**
 * Wait until every reachable node, this one included, has applied
 * `revision`, so that a revoked token is refused everywhere once the revoke
 * returns. A node that does not answer is asked again until a deadline, so
 * that one lost connection does not count as a node out of reach. Returns
 * the nodes that did not confirm (down or partitioned: they catch up before
 * they serve anything newer).
 */
async function everyNodeAt(d: SecurityDeps, revision: number): Promise<string[]> {
  const deadline = Date.now() + 4000;
  // This node too: a follower forwards the write and has its answer before its own replica applied it.
  const self = (await untilApplied(d.db, revision, deadline)) >= revision ? [] : [d.membership.selfId];
  const others = d.membership.nodes().filter((n) => n.id !== d.membership.selfId);
  const results = await Promise.all(
    others.map(async (n) => {
      let why = 'it is behind';
      do {
        try {
          const r = (await d.forward(n.id, 'GET', `/v1/cluster/caught-up?revision=${revision}`, undefined)) as { revision: number };
          if (r.revision >= revision) return undefined;
        } catch (err) {
          why = errorMessage(err);
          await new Promise((r) => setTimeout(r, 200));
        }
      } while (Date.now() < deadline);
      d.log.warn({ node: n.id, revision, why }, 'a node did not confirm a token change; it refuses the token once it catches up');
      return n.id;
    }),
  );
  return [...self, ...results.filter((id): id is string => id !== undefined)];
}

/** Wait until this replica has applied `revision`, or the deadline; returns the revision it has. */
async function untilApplied(db: ControlDb, revision: number, deadline: number): Promise<number> {
  while (db.store.revision() < revision && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  return db.store.revision();
}
