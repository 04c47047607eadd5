// Which nodes form the cluster and where to reach them. Raft's configuration
// says who votes; the node records under /_cluster/nodes/ say where each node
// listens. Joining adds a node as a learner; the leader promotes it to voter
// once it has caught up, so a new node never weakens the quorum.
import { z } from 'zod';
import { UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { RaftError, type NodeId } from '../raft/types.ts';
import type { ControlDb, Consensus, Forwarder } from './controldb.ts';

export const NODES_PREFIX = '/_cluster/nodes/';
/** Nodes removed from the cluster: their certificates are refused from then on, as a CRL would. */
export const REMOVED_PREFIX = '/_cluster/removed/';

const nodeSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    addr: z.string(),
    zone: z.string(),
    network: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    capacity: z.object({ cpus: z.number(), memoryMiB: z.number() }).strict().optional(),
    key: z.string().optional(),
  })
  .strict();

/** A node record as stored, checked: what does not read as one is an error naming its key. */
export function parseNodeRecord(kv: { key: string; value: string }): NodeRecord {
  const r = nodeSchema.safeParse(JSON.parse(kv.value));
  if (!r.success) throw new Error(`record ${kv.key} is not a node record: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return r.data;
}

export interface NodeRecord {
  id: NodeId;
  name: string;
  addr: string;
  zone: string;
  /** The network of its address (10.0.1.0/24): services without an access list are open to the nodes' networks. */
  network?: string;
  /** Set by the operator (firecampd --labels); services may require some. */
  labels?: Record<string, string>;
  /** What the node offers members, for placement. */
  capacity?: { cpus: number; memoryMiB: number };
  /** SHA-256 of the node's public key: a retried join with the same key is the same node. */
  key?: string;
}

export class Membership {
  private promoteTimer: NodeJS.Timeout | null = null;
  private promoting = false;

  constructor(
    private readonly db: ControlDb,
    private readonly raft: Consensus,
    readonly selfId: NodeId,
    private readonly forward: Forwarder,
    private readonly log: Logger,
  ) {}

  /** Node records from the local replica. */
  nodes(): NodeRecord[] {
    return this.db.store.range({ key: NODES_PREFIX, prefix: true, limit: 0 }).kvs.map(parseNodeRecord);
  }

  /**
   * Whether a node was removed from the cluster. Peers are let in by their
   * certificate unless removed: a node that is behind may not know the newest
   * members yet, but it must still let them catch it up.
   */
  wasRemoved(id: NodeId): boolean {
    return this.db.store.get(REMOVED_PREFIX + id) !== undefined;
  }

  record(id: NodeId): NodeRecord | undefined {
    const kv = this.db.store.get(NODES_PREFIX + id);
    return kv ? parseNodeRecord(kv) : undefined;
  }

  address(id: NodeId): string | undefined {
    const kv = this.db.store.get(NODES_PREFIX + id);
    return kv ? parseNodeRecord(kv).addr : undefined;
  }

  /** Record (or update) where a node listens. */
  async register(rec: NodeRecord, forwarded = false): Promise<void> {
    const key = NODES_PREFIX + rec.id;
    const value = JSON.stringify(rec);
    if (this.db.store.get(key)?.value === value) return;
    await this.db.txn({ compare: [], success: [{ put: { key, value } }], failure: [] }, forwarded);
  }

  /** A new node asks to join: record it and add it as a learner. Runs on the leader. */
  async join(rec: NodeRecord, forwarded = false): Promise<{ members: NodeRecord[] }> {
    const st = this.raft.status();
    if (st.role !== 'leader') {
      if (!st.leader) throw new UserError('no leader to join through; retry shortly', 503, 'unavailable');
      if (forwarded) throw new UserError('leadership moved while joining; retry', 503, 'unavailable');
      return (await this.forward(st.leader, 'POST', '/v1/cluster/admit', rec)) as { members: NodeRecord[] };
    }
    await this.register(rec);
    const member = st.conf.voters.includes(rec.id) || st.conf.learners.includes(rec.id);
    if (!member) {
      await this.withConfRetry(() => this.raft.proposeConfChange({ type: 'addLearner', node: rec.id }));
      this.log.info({ node: rec.id, addr: rec.addr }, 'node joined as a learner');
    }
    return { members: this.nodes() };
  }

  /** Remove a node from the configuration. A leader removing itself hands over leadership first. */
  async remove(id: NodeId, forwarded = false): Promise<{ removed: NodeId }> {
    const st = this.raft.status();
    if (!st.conf.voters.includes(id) && !st.conf.learners.includes(id)) {
      throw new UserError(`node ${id} is not a member of the cluster`, 404, 'not_found');
    }
    if (st.role !== 'leader' || id === this.selfId) {
      if (st.role === 'leader') await this.handOver();
      const leader = this.raft.status().leader;
      if (!leader || leader === this.selfId) throw new UserError('no other leader to remove this node through; retry', 503, 'unavailable');
      if (forwarded && st.role !== 'leader') throw new UserError('leadership moved while removing; retry', 503, 'unavailable');
      return (await this.forward(leader, 'POST', '/v1/cluster/remove', { id })) as { removed: NodeId };
    }
    if (st.conf.voters.length === 1 && st.conf.voters[0] === id) throw new UserError('cannot remove the last voter', 409, 'last_voter');
    await this.withConfRetry(() => this.raft.proposeConfChange({ type: 'remove', node: id }));
    await this.db.txn({
      compare: [],
      success: [{ delete: { key: NODES_PREFIX + id, prefix: false } }, { put: { key: REMOVED_PREFIX + id, value: new Date().toISOString() } }],
      failure: [],
    });
    this.log.info({ node: id }, 'node removed from the cluster');
    return { removed: id };
  }

  /** Give leadership to the most caught-up other voter and wait until it has it. */
  private async handOver(): Promise<void> {
    const st = this.raft.status();
    const others = st.conf.voters.filter((v) => v !== this.selfId);
    if (others.length === 0) throw new UserError('this is the only voter: nothing to hand leadership to', 409, 'last_voter');
    const target = others.sort((a, b) => (st.peers?.[b]?.match ?? 0) - (st.peers?.[a]?.match ?? 0))[0];
    this.raft.transferLeadership(target);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const now = this.raft.status();
      if (now.role !== 'leader' && now.leader && now.leader !== this.selfId) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new UserError(`leadership did not move to ${target} in 5 s; retry`, 503, 'unavailable');
  }

  /** A membership change waits while another is in flight. */
  private async withConfRetry(fn: () => Promise<unknown>): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await fn();
        return;
      } catch (err) {
        if (!(err instanceof RaftError && err.code === 'conf_change_pending') || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** On the leader: promote learners that have caught up, one at a time. */
  leadershipChanged(isLeader: boolean): void {
    if (this.promoteTimer) clearInterval(this.promoteTimer);
    this.promoteTimer = null;
    if (!isLeader) return;
    this.promoteTimer = setInterval(() => void this.promoteCaughtUp(), 250);
    this.promoteTimer.unref();
  }

  private async promoteCaughtUp(): Promise<void> {
    if (this.promoting) return;
    const st = this.raft.status();
    if (st.role !== 'leader') return;
    const ready = st.conf.learners.find((id) => (st.peers?.[id]?.match ?? 0) >= st.commit);
    if (!ready) return;
    this.promoting = true;
    try {
      await this.raft.proposeConfChange({ type: 'promote', node: ready });
      this.log.info({ node: ready }, 'learner caught up and was promoted to voter');
    } catch (err) {
      if (!(err instanceof RaftError)) this.log.warn({ err }, 'promotion failed');
    } finally {
      this.promoting = false;
    }
  }

  close(): void {
    this.leadershipChanged(false);
  }
}
