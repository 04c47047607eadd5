// HTTP routes for the cluster: status, join, remove, leave.
import { z } from 'zod';
import type { ApiRequest, ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import type { Consensus, ControlDb } from './controldb.ts';
import type { Membership } from './membership.ts';
import { FORWARDED_HEADER } from './routes.ts';

export const nodeRecordSchema = z
  .object({
    id: z.string().regex(/^[a-zA-Z0-9._-]{1,64}$/),
    name: z.string().max(255),
    addr: z.string().min(3).max(300),
    zone: z.string().max(255),
    network: z.cidrv4().optional(),
    labels: z.record(z.string().max(63), z.string().max(255)).optional(),
    capacity: z.object({ cpus: z.number().positive(), memoryMiB: z.number().int().positive() }).strict().optional(),
    key: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
  })
  .strict();
const removeBody = z.object({ id: z.string().min(1) }).strict();

const forwarded = (req: ApiRequest) => req.raw.headers[FORWARDED_HEADER] === '1';

export function registerClusterRoutes(api: ApiServer, db: ControlDb, raft: Consensus, membership: Membership, selfId: string, onLeft: () => void): void {
  api.route('GET', '/v1/cluster/status', () => {
    const st = raft.status();
    const records = new Map(membership.nodes().map((n) => [n.id, n]));
    const ids = [...new Set([...st.conf.voters, ...st.conf.learners, ...records.keys()])].sort();
    return {
      node: selfId,
      role: st.role,
      term: st.term,
      leader: st.leader,
      commit: st.commit,
      applied: st.applied,
      revision: db.store.revision(),
      members: ids.map((id) => ({
        id,
        name: records.get(id)?.name ?? '',
        addr: records.get(id)?.addr ?? '',
        zone: records.get(id)?.zone ?? '',
        role: st.conf.voters.includes(id) ? 'voter' : st.conf.learners.includes(id) ? 'learner' : 'none',
        leader: st.leader === id,
        ...(st.peers?.[id] ? { match: st.peers[id].match, active: st.peers[id].recentActive } : {}),
      })),
    };
  });
  // Joins arrive at /v1/cluster/join (security/routes.ts), which checks the join token and signs the certificate; the leader then admits the node.
  api.route('POST', '/v1/cluster/admit', (req) => membership.join(parseBody(nodeRecordSchema, req.body), forwarded(req)), 'peer');
  api.route('POST', '/v1/cluster/remove', (req) => membership.remove(parseBody(removeBody, req.body).id, forwarded(req)));
  api.route('POST', '/v1/cluster/leave', async () => {
    const r = await membership.remove(selfId);
    setTimeout(onLeft, 100).unref();
    return r;
  });
}
