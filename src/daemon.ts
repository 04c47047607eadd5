// One firecampd node: the data dir, the API server, Raft and the controldb,
// wired together and taken down in reverse order on shutdown.
import path from 'node:path';
import { ApiServer, RawResponse } from './api/server.ts';
import { formatHostPort, type NodeConfig } from './config.ts';
import { registerClusterRoutes } from './controldb/cluster-routes.ts';
import { ControlDb } from './controldb/controldb.ts';
import { httpForwarder } from './controldb/forward.ts';
import { Membership, type NodeRecord } from './controldb/membership.ts';
import { registerKvRoutes } from './controldb/routes.ts';
import { KvStore } from './controldb/store.ts';
import { openDataDir, type DataDir } from './datadir.ts';
import { UserError, errorMessage } from './errors.ts';
import type { Logger } from './log.ts';
import { createRegistry, gaugeFrom } from './metrics.ts';
import { RaftNode } from './raft/node.ts';
import { RaftStorage } from './raft/storage.ts';
import { Transport } from './raft/transport.ts';
import { VERSION } from './version.ts';

export class Daemon {
  readonly api: ApiServer;
  readonly dataDir: DataDir;
  private readonly startedAt = Date.now();
  private closing?: Promise<void>;
  private storage?: RaftStorage;
  private store?: KvStore;
  private transport?: Transport;
  private raft?: RaftNode;
  private controldb?: ControlDb;
  private membership?: Membership;
  /** Addresses learned when joining, until our replica has the node records. */
  private readonly seedAddresses = new Map<string, string>();
  /** The port actually bound (differs from the config when it asked for 0). */
  port = 0;
  /** Called when this node has left the cluster and should exit. */
  onLeft: () => void = () => {};

  constructor(readonly config: NodeConfig, private readonly log: Logger) {
    this.dataDir = openDataDir(config.dataDir, config.token);
    this.api = new ApiServer({ token: this.dataDir.token, log });
    const metrics = createRegistry();
    this.api.route('GET', '/v1/health', () => ({
      status: 'ok',
      node_id: this.dataDir.nodeId,
      name: config.name,
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      role: this.raft?.status().role ?? 'starting',
      leader: this.raft?.status().leader ?? null,
    }));
    this.api.route('GET', '/metrics', async () => new RawResponse(metrics.contentType, await metrics.metrics()));
    gaugeFrom(metrics, 'firecampd_raft_term', 'Current Raft term', () => this.raft?.status().term ?? 0);
    gaugeFrom(metrics, 'firecampd_raft_is_leader', '1 if this node leads', () => (this.raft?.status().role === 'leader' ? 1 : 0));
    gaugeFrom(metrics, 'firecampd_raft_commit_index', 'Raft commit index', () => this.raft?.status().commit ?? 0);
    gaugeFrom(metrics, 'firecampd_raft_applied_index', 'Raft applied index', () => this.raft?.status().applied ?? 0);
    gaugeFrom(metrics, 'firecampd_raft_dropped_frames', 'Raft frames dropped because a peer was unreachable or slow', () => this.transport?.droppedFrames() ?? 0);
    gaugeFrom(metrics, 'firecampd_controldb_revision', 'controldb store revision', () => this.store?.revision() ?? 0);
  }

  get nodeId(): string {
    return this.dataDir.nodeId;
  }

  private self(): NodeRecord {
    return { id: this.nodeId, name: this.config.name, addr: formatHostPort(this.config.advertise), zone: this.config.zone };
  }

  private address = (id: string): string | undefined => this.membership?.address(id) ?? this.seedAddresses.get(id);

  async start(): Promise<void> {
    const dir = this.dataDir.path;
    const addr = await this.api.listen(this.config.bind.host, this.config.bind.port);
    this.port = addr.port;
    if (this.config.advertise.port === 0) this.config.advertise.port = addr.port;

    this.storage = RaftStorage.open(path.join(dir, 'raft.db'));
    this.store = new KvStore(path.join(dir, 'state.db'));
    if (this.storage.isEmpty()) {
      if (this.config.join.length === 0) {
        this.storage.bootstrap({ voters: [this.nodeId], learners: [] });
        this.log.info({ node_id: this.nodeId }, 'bootstrapped a new cluster');
      } else {
        await this.join();
      }
    }

    const forward = httpForwarder(this.dataDir.token, this.address);
    this.transport = new Transport({
      selfId: this.nodeId,
      token: this.dataDir.token,
      log: this.log,
      resolve: this.address,
      onMessages: (msgs) => this.raft?.receive(msgs),
    });
    this.transport.attach(this.api);
    const store = this.store;
    this.raft = new RaftNode({
      id: this.nodeId,
      storage: this.storage,
      send: (msgs) => this.transport!.send(msgs),
      log: this.log,
      apply: (entries) => store.apply(entries),
      restore: (s) => store.restore(s.data),
      takeSnapshot: () => store.snapshot(),
      applied: store.appliedIndex(),
      onLeaderChange: (_leader, isLeader) => {
        this.controldb?.leadershipChanged(isLeader);
        this.membership?.leadershipChanged(isLeader);
      },
    });
    const unsafeStaleReads = this.config.unsafeStaleReads;
    if (unsafeStaleReads) this.log.warn('FIRECAMPD_UNSAFE_STALE_READS is set: reads are NOT linearizable (a test fault)');
    this.controldb = new ControlDb({ store, raft: this.raft, forward, log: this.log, unsafeStaleReads });
    this.membership = new Membership(this.controldb, this.raft, this.nodeId, forward, this.log);
    registerKvRoutes(this.api, this.controldb);
    registerClusterRoutes(this.api, this.controldb, this.raft, this.membership, this.nodeId, () => this.onLeft());
    this.raft.start();
    void this.keepRegistered();

    this.log.info(
      {
        node_id: this.nodeId,
        data_dir: dir,
        bind: formatHostPort({ host: addr.address, port: addr.port }),
        advertise: formatHostPort(this.config.advertise),
        version: VERSION,
      },
      'firecampd started',
    );
  }

  /** Ask the cluster to take us in, trying each --join address until one answers. */
  private async join(): Promise<void> {
    const deadline = Date.now() + 120_000;
    let lastError = '';
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      for (const target of this.config.join) {
        const url = `http://${formatHostPort(target)}/v1/cluster/join`;
        try {
          const res = await fetch(url, {
            method: 'POST',
            headers: { authorization: `Bearer ${this.dataDir.token}`, 'content-type': 'application/json' },
            body: JSON.stringify(this.self()),
            signal: AbortSignal.timeout(10_000),
          });
          const body = (await res.json()) as { members?: NodeRecord[]; error?: { message: string } };
          if (res.status === 401) throw new UserError(`${formatHostPort(target)} refused our token: pass the cluster's token with --token or FIRECAMPD_TOKEN`);
          if (!res.ok) throw new Error(body.error?.message ?? `HTTP ${res.status}`);
          for (const m of body.members ?? []) this.seedAddresses.set(m.id, m.addr);
          this.log.info({ via: formatHostPort(target), members: body.members?.length }, 'joined the cluster as a learner');
          return;
        } catch (err) {
          if (err instanceof UserError) throw err;
          lastError = `${formatHostPort(target)}: ${errorMessage((err as { cause?: unknown }).cause ?? err)}`;
        }
      }
      if (attempt % 10 === 0) this.log.warn({ error: lastError }, 'could not join yet; retrying');
      await new Promise((r) => setTimeout(r, Math.min(200 * 2 ** attempt, 2000)));
    }
    throw new UserError(`could not join the cluster within 120 s: ${lastError}`);
  }

  /** Keep this node's record (its address) current in the controldb. */
  private async keepRegistered(): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      try {
        await this.membership!.register(this.self());
        return;
      } catch (err) {
        if (attempt % 20 === 19) this.log.warn({ err: errorMessage(err) }, 'could not record this node in the controldb yet');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  stop(): Promise<void> {
    this.closing ??= (async () => {
      this.log.info('shutting down');
      this.membership?.close();
      this.controldb?.close();
      this.raft?.stop();
      this.transport?.close();
      await this.api.close();
      this.storage?.close();
      this.store?.close();
      this.dataDir.lock.close();
      this.log.info('stopped');
    })();
    return this.closing;
  }
}
