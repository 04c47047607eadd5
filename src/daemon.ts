// One firecampd node: the data dir, the API server, Raft and the controldb,
// wired together and taken down in reverse order on shutdown.
import { readMembers, readNodes } from './catalog/records.ts';
import { timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApiServer, RawResponse } from './api/server.ts';
import { ApiClient, LOCAL_SOCKET, fetchPinnedCa, type ApiErrorBody } from './client.ts';
import { formatHostPort, parseHostPort, zonal, type NodeConfig } from './config.ts';
import { registerClusterRoutes } from './controldb/cluster-routes.ts';
import { ControlDb } from './controldb/controldb.ts';
import { httpForwarder } from './controldb/forward.ts';
import { Membership, type NodeRecord } from './controldb/membership.ts';
import { registerKvRoutes } from './controldb/routes.ts';
import { KvStore } from './controldb/store.ts';
import { openDataDir, type DataDir } from './datadir.ts';
import { UserError, errorMessage } from './errors.ts';
import { canonicalCidr } from './firewall/allow.ts';
import { NodeFirewall } from './firewall/firewall.ts';
import { registerFirewallRoutes } from './firewall/routes.ts';
import type { Logger } from './log.ts';
import { createRegistry, gaugeFrom } from './metrics/registry.ts';
import { RaftNode } from './raft/node.ts';
import { RaftStorage } from './raft/storage.ts';
import { Transport } from './raft/transport.ts';
import {
  TLS_DIR,
  caDigest,
  clearPendingKey,
  createCa,
  generateKeyPair,
  clusterApiName,
  issueNodeCert,
  loadNodeTls,
  pendingKey,
  publicKeyDigest,
  saveNodeTls,
  writePrivate,
  type CaPem,
  type NodeTls,
} from './security/pki.ts';
import { registerSecurityRoutes } from './security/routes.ts';
import { Tokens, parseToken, type TokenKind, type Validation } from './security/tokens.ts';
import { withTimeout } from './timeout.ts';
import { VERSION } from './version.ts';
import { Agent } from './agent/agent.ts';
import { DnsServer, type DnsAnswer } from './agent/dns-server.ts';
import { HostsFile } from './agent/hosts-file.ts';
import { Containers, dockerClient } from './agent/docker.ts';
import { NodeLease } from './agent/lease.ts';
import { DNS_PREFIX } from './agent/providers/embedded-dns.ts';
import { ALIVE_PREFIX } from './agent/members.ts';
import { mountRoot, selectProviders } from './agent/providers/select.ts';
import { Watchdog } from './agent/watchdog.ts';
import { Catalog } from './catalog/catalog.ts';
import { registerLogRoutes } from './catalog/logs.ts';
import { LogKeeper } from './agent/logs/keeper.ts';
import { JavaAgents } from './agent/java-agents.ts';
import { registerClusterGauges } from './metrics/cluster.ts';
import { registerMemberGauges } from './metrics/members.ts';
import { registerTargetRoutes } from './metrics/targets.ts';
import { memberExec, registerExecRoute } from './catalog/member-exec.ts';
import { registerServiceRoutes } from './catalog/routes.ts';
import { partMaker, registerPartRoute } from './backup/parts.ts';
import { registerBackupRoutes } from './backup/routes.ts';
import { BackupRunner } from './backup/runner.ts';
import { Archiver } from './backup/archiver.ts';
import { BackupScheduler } from './backup/scheduler.ts';
import { Drills } from './backup/drills.ts';
import { EventRetention } from './events/retention.ts';
import { registerEventRoutes } from './events/routes.ts';
import { localTargetWarning } from './backup/view.ts';
import { BACKUP_TARGET } from './backup/records.ts';

/** The CA key of a bootstrapping node, kept on disk only until the controldb holds it. */
const BOOTSTRAP_CA_KEY = 'ca.key';

/** Where this node's agent stands, for /v1/health: members run on the node only while it runs. */
type AgentState = { kind: 'starting' } | { kind: 'waiting'; error: string } | { kind: 'running' } | { kind: 'failed'; error: string };

/** How long /v1/health waits for the Docker engine's answer before it calls it unreachable. */
const DOCKER_PING_MS = 2000;

/** The network of the interface that holds `ip` (10.0.1.7 on a /24 → 10.0.1.0/24), if this host has it. */
function interfaceNetwork(ip: string): string | undefined {
  const found = Object.values(os.networkInterfaces())
    .flat()
    .find((a) => a?.family === 'IPv4' && a.address === ip && a.cidr);
  return found?.cidr ? canonicalCidr(found.cidr) : undefined;
}

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
  private tokens?: Tokens;
  private tls?: NodeTls;
  private memberSweep?: NodeJS.Timeout;
  private agent?: Agent;
  /** Keeps members' output on their volumes; `service logs` reads it. */
  private memberLogs?: LogKeeper;
  private archiver?: Archiver;
  private catalog?: Catalog;
  private docker?: ReturnType<typeof dockerClient>;
  private dns?: DnsServer;
  private agentState: AgentState = { kind: 'starting' };
  private firewall?: NodeFirewall;
  /** Addresses learned when joining, until our replica has the node records. */
  private readonly seedAddresses = new Map<string, string>();
  /** The port actually bound (differs from the config when it asked for 0). */
  port = 0;
  /** Called when this node has left the cluster and should exit. */
  onLeft: () => void = () => {};

  constructor(
    readonly config: NodeConfig,
    private readonly log: Logger,
  ) {
    this.dataDir = openDataDir(config.dataDir);
    this.api = new ApiServer({
      log,
      auth: {
        isMember: (id) => !(this.membership?.wasRemoved(id) ?? false),
        checkToken: (token, kind) => this.checkToken(token, kind),
      },
    });
    const metrics = createRegistry();
    // 200 also when degraded: the API answers; `firecampd health` exits non-zero unless status is ok.
    this.api.route('GET', '/v1/health', () => this.health());
    this.api.route('GET', '/metrics', async () => new RawResponse(metrics.contentType, await metrics.metrics()));
    gaugeFrom(metrics, 'firecampd_raft_term', 'Current Raft term', () => this.raft?.status().term ?? 0);
    gaugeFrom(metrics, 'firecampd_raft_is_leader', '1 if this node leads', () => (this.raft?.status().role === 'leader' ? 1 : 0));
    gaugeFrom(metrics, 'firecampd_raft_commit_index', 'Raft commit index', () => this.raft?.status().commit ?? 0);
    gaugeFrom(metrics, 'firecampd_raft_applied_index', 'Raft applied index', () => this.raft?.status().applied ?? 0);
    gaugeFrom(
      metrics,
      'firecampd_raft_dropped_frames',
      'Raft frames dropped because a peer was unreachable or slow',
      () => this.transport?.droppedFrames() ?? 0,
    );
    gaugeFrom(metrics, 'firecampd_controldb_revision', 'controldb store revision', () => this.store?.revision() ?? 0);
    registerClusterGauges(metrics, () => this.controldb?.store);
    registerMemberGauges(metrics, { nodeId: this.nodeId, store: () => this.controldb?.store, restarts: (m) => this.agent?.restarts(m) ?? 0 });
  }

  /** The Docker engine the agent drives, as named in messages (dockerClient's choice). */
  private dockerHost(): string {
    return this.config.dockerHost ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  }

  /**
   * Whether this node serves and can run members: status is "ok" only when
   * its Raft node runs and its agent runs against a Docker engine that
   * answers; otherwise "degraded", with each problem and what to do.
   */
  private async health() {
    const raft = this.raft?.status();
    const problems: string[] = [];
    if (!raft) problems.push('the node is still starting (joining the cluster or opening its state): it serves no requests yet; ask again shortly');
    const docker = `its Docker engine at ${this.dockerHost()}`;
    const cannotRun = 'members cannot run on this node';
    let agent: string;
    const st = this.agentState;
    if (st.kind === 'running') {
      agent = 'running';
      try {
        await withTimeout(this.docker!.ping(), DOCKER_PING_MS, 'the Docker engine');
      } catch (err) {
        // The agent started, but Docker went away since: its members cannot be started, restarted or watched.
        agent = `running, but cannot reach Docker: ${errorMessage(err)}`;
        problems.push(`the agent cannot reach ${docker} (${errorMessage(err)}): members on this node cannot be started or watched; start dockerd again`);
      }
    } else if (st.kind === 'waiting') {
      agent = `waiting for Docker: ${st.error}`;
      problems.push(`the agent cannot reach ${docker} (${st.error}): ${cannotRun}; start dockerd or pass --docker-host`);
    } else if (st.kind === 'failed') {
      agent = `failed: ${st.error}`;
      problems.push(`the agent could not start (${st.error}): ${cannotRun}; see this node's log, fix the cause and restart firecampd`);
    } else {
      agent = 'starting';
      problems.push(
        `the agent is still starting (it needs an answer from Docker and a node lease from the leader): ${cannotRun} until it runs; ask again in a few seconds`,
      );
    }
    const fw = this.firewall?.status();
    if (fw && !fw.ok) problems.push(`the firewall cannot be set (${fw.error}): members whose walls it holds cannot start on this node`);
    // Not a problem of the node: said, so that nobody learns it from a lost node.
    const warnings: string[] = [];
    const backupTarget = this.controldb?.store.get(BACKUP_TARGET)?.value ?? this.defaultBackupTarget();
    const nodes = this.membership?.nodes().length ?? 1;
    const local = localTargetWarning(backupTarget, this.defaultBackupTarget(), nodes);
    if (local) warnings.push(local);
    return {
      status: problems.length === 0 ? 'ok' : 'degraded',
      node_id: this.dataDir.nodeId,
      name: this.config.name,
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      role: raft?.role ?? 'starting',
      leader: raft?.leader ?? null,
      agent,
      firewall: fw ? (fw.ok ? { table: this.firewall!.table, services: fw.services } : { table: this.firewall!.table, error: fw.error }) : null,
      backup_target: backupTarget,
      problems,
      warnings,
    };
  }

  /** Where backups go when neither the service nor the cluster names a target: this node's data dir. */
  private defaultBackupTarget(): string {
    return `dir:${path.join(this.dataDir.path, 'backups')}`;
  }

  get nodeId(): string {
    return this.dataDir.nodeId;
  }

  private self(): NodeRecord {
    const rec: NodeRecord = {
      id: this.nodeId,
      name: this.config.name,
      addr: formatHostPort(this.config.advertise),
      zone: this.config.zone,
      labels: this.config.labels,
      capacity: { cpus: os.availableParallelism(), memoryMiB: Math.floor(os.totalmem() / 2 ** 20) },
    };
    const network = interfaceNetwork(this.config.advertise.host);
    if (network) rec.network = network;
    if (this.tls) rec.key = publicKeyDigest(this.tls.keyPem);
    return rec;
  }

  /**
   * A token is checked against the local replica; one it does not know may
   * be newer than the replica, so it is checked again after catching up.
   * Until the first leader has stored the operator's bootstrap token, the
   * first node accepts it from its own configuration.
   */
  private async checkToken(token: string, kind: TokenKind): Promise<Validation> {
    const tokens = this.tokens;
    if (!tokens) return { ok: false, reason: 'the node is still starting; retry shortly' };
    if (kind === 'api' && !tokens.initialized() && this.config.token && sameSecret(token, this.config.token)) return { ok: true, id: 'bootstrap' };
    const v = tokens.validate(token, kind);
    if (v.ok) return v;
    try {
      await this.controldb!.linearize();
    } catch {
      return v;
    }
    return tokens.validate(token, kind);
  }

  private address = (id: string): string | undefined => this.membership?.address(id) ?? this.seedAddresses.get(id);

  async start(): Promise<void> {
    const dir = this.dataDir.path;
    const addr = await this.api.listen(this.config.bind.host, this.config.bind.port);
    this.port = addr.port;
    if (this.config.advertise.port === 0) this.config.advertise.port = addr.port;

    this.storage = RaftStorage.open(dir);
    this.store = new KvStore(path.join(dir, 'state.db'));
    this.tls = loadNodeTls(dir);
    if (!this.tls) {
      if (this.storage.isEmpty() && this.config.join.length === 0) {
        this.tls = await this.makeOwnCertificate(await createCa());
        this.storage.bootstrap({ voters: [this.nodeId], learners: [] });
        this.log.info(
          { node_id: this.nodeId, ca_digest: caDigest(this.tls.caPem) },
          'bootstrapped a new cluster; "firecampd token join" prints the token other nodes join with',
        );
      } else if (this.storage.isEmpty()) {
        this.tls = await this.join();
      } else {
        // A restored snapshot: the node signs its own certificate with the cluster's CA in it.
        const kv = this.store.get('/_cluster/secret/ca');
        this.tls = await this.makeOwnCertificate(kv ? (JSON.parse(kv.value) as CaPem) : await createCa());
      }
    }
    const tls = this.tls;
    this.api.enableTls(tls);
    await this.api.listenLocal(path.join(dir, LOCAL_SOCKET));

    const forward = httpForwarder(tls, this.address);
    this.transport = new Transport({
      selfId: this.nodeId,
      tls,
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
        this.catalog?.leadershipChanged(isLeader);
        if (isLeader) void this.initializeCluster();
      },
    });
    const unsafeStaleReads = this.config.unsafeStaleReads;
    if (unsafeStaleReads) this.log.warn('FIRECAMPD_UNSAFE_STALE_READS is set: reads are NOT linearizable (a test fault)');
    this.controldb = new ControlDb({ store, raft: this.raft, forward, log: this.log, unsafeStaleReads });
    this.membership = new Membership(this.controldb, this.raft, this.nodeId, forward, this.log);
    this.tokens = new Tokens(this.controldb, caDigest(tls.caPem));
    const execDeps = { db: this.controldb, selfId: this.nodeId, docker: () => this.docker };
    // A member's tool may run for minutes (a repair, moving partitions), a dump for as long as its data takes: the connection waits as long.
    const toMembers = httpForwarder(tls, this.address, 3_600_000, 'the node');
    const exec = memberExec({ ...execDeps, forward: toMembers });
    const services = registerServiceRoutes(this.api, this.controldb, {
      ipPool: this.config.ipPool,
      defaultBackupTarget: this.defaultBackupTarget(),
      log: this.log.child({ part: 'services' }),
    });
    registerFirewallRoutes(this.api, this.controldb, this.log.child({ part: 'services' }));
    const drills = new Drills({ db: this.controldb, log: this.log.child({ part: 'backups' }), services, exec });
    this.catalog = new Catalog({
      db: this.controldb,
      backups: [
        new BackupRunner({
          db: this.controldb,
          selfId: this.nodeId,
          log: this.log.child({ part: 'backups' }),
          makePart: partMaker({ ...execDeps, forward: toMembers }),
          exec,
        }),
        new BackupScheduler({ db: this.controldb, log: this.log.child({ part: 'backups' }), defaultTarget: this.defaultBackupTarget() }),
        drills,
        new EventRetention({
          db: this.controldb,
          log: this.log.child({ part: 'events' }),
          bounds: { maxEvents: this.config.eventsMax, maxAgeMs: this.config.eventsMaxAgeHours * 3_600_000 },
        }),
      ],
      domain: this.config.dnsDomain,
      ipPool: this.config.ipPool,
      zonal: zonal(this.config),
      log: this.log.child({ part: 'catalog' }),
      exec,
    });
    registerExecRoute(this.api, execDeps);
    registerPartRoute(this.api, execDeps);
    registerBackupRoutes(this.api, this.controldb, {
      services,
      drills,
      defaultTarget: this.defaultBackupTarget(),
      exec,
      log: this.log.child({ part: 'backups' }),
    });
    registerLogRoutes(this.api, {
      db: this.controldb,
      selfId: this.nodeId,
      tls,
      address: this.address,
      keptLog: (service, member) => this.memberLogs?.filesOf(service, member),
    });
    registerKvRoutes(this.api, this.controldb);
    registerEventRoutes(this.api, this.controldb);
    registerTargetRoutes(this.api, this.controldb);
    registerClusterRoutes(this.api, this.controldb, this.raft, this.membership, this.nodeId, () => this.onLeft());
    registerSecurityRoutes(this.api, {
      db: this.controldb,
      tokens: this.tokens,
      membership: this.membership,
      caPem: tls.caPem,
      domain: this.config.dnsDomain,
      forward,
      log: this.log,
    });
    this.raft.start();
    void this.keepRegistered();
    await this.startDns();
    void this.startAgent();
    // Requests are checked one by one; long-lived peer connections of a removed node are cut here.
    this.memberSweep = setInterval(() => this.transport?.dropNonMembers((id) => !this.membership!.wasRemoved(id)), 1000);
    this.memberSweep.unref();

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

  /** The embedded DNS server, answering for the cluster domain from this node's replica. */
  private async startDns(): Promise<void> {
    const store = this.store!;
    const domain = this.config.dnsDomain;
    const apiName = clusterApiName(domain);
    const lookup = (name: string): DnsAnswer | undefined => {
      if (name === apiName) {
        const live = readNodes(store).filter((n) => store.get(ALIVE_PREFIX + n.id));
        return live.length > 0 ? { a: live.map((n) => parseHostPort(n.addr, 0, 'addr', true).host), srv: [] } : undefined;
      }
      const a = store.get(DNS_PREFIX + name)?.value;
      // SRV: the members of a service, asked as <service>.<domain> or _x._tcp.<service>.<domain>.
      const service = name.replace(/^(_[^.]+\.)+/, '');
      const srv = readMembers(store).flatMap(({ value: m }) =>
        m.dnsName?.endsWith(`.${service}`) && store.get(DNS_PREFIX + m.dnsName) ? [{ target: m.dnsName, port: m.port ?? 0 }] : [],
      );
      if (!a && srv.length === 0) return undefined;
      return { ...(a ? { a: [a] } : {}), srv };
    };
    this.dns = new DnsServer({ zone: domain, lookup, log: this.log });
    const { host, port } = this.config.dnsListen;
    try {
      const bound = await this.dns.listen(host, port);
      this.log.info({ listen: formatHostPort({ host, port: bound }), domain }, 'DNS server up');
    } catch (err) {
      // The control plane runs on without it (port 5353 is mDNS's too on many machines); names just do not resolve here.
      this.dns = undefined;
      this.log.error(
        { listen: formatHostPort(this.config.dnsListen), err: errorMessage(err) },
        "the DNS server could not start: members' names will not resolve on this node; choose another --dns-listen",
      );
    }
  }

  /** The agent runs the members assigned to this node; it waits for Docker if Docker is not up yet. */
  private async startAgent(): Promise<void> {
    const c = this.config;
    const dir = this.dataDir.path;
    const cluster = caDigest(this.tls!.caPem).slice(0, 16);
    const docker = dockerClient(c.dockerHost);
    for (let attempt = 0; !this.closing; attempt++) {
      try {
        await docker.ping();
        break;
      } catch (err) {
        this.agentState = { kind: 'waiting', error: errorMessage(err) };
        if (attempt % 12 === 0) this.log.warn({ err: errorMessage(err) }, 'cannot reach Docker; members cannot run on this node until it is up');
        await new Promise((r) => setTimeout(r, 5000));
      }
    }
    if (this.closing) return;
    this.docker = docker;
    this.agentState = { kind: 'starting' };
    const db = this.controldb!;
    try {
      const providers = await selectProviders({ config: c, dataDir: dir, nodeId: this.nodeId, cluster, db, log: this.log });
      if (this.closing) return;
      const lease = new NodeLease(db, this.nodeId, c.leaseTtl, dir, this.log, () => {});
      const firewall = new NodeFirewall({ db, nodeId: this.nodeId, log: this.log.child({ part: 'firewall' }) });
      this.firewall = firewall;
      // The watchdog fences without the controldb or AWS: it drops the addresses from the interface (the next holder takes them over in AWS).
      const watchdogIps = c.staticIps.kind === 'none' ? 'none' : `local:${c.staticIps.iface}/${c.staticIps.prefix}`;
      const memberLogs = new LogKeeper(docker, this.nodeId, this.log.child({ part: 'logs' }), c.memberLogs);
      this.memberLogs = memberLogs;
      this.agent = new Agent({
        db,
        nodeId: this.nodeId,
        nodeIp: c.advertise.host,
        hosts: new HostsFile(db, path.join(dir, 'hosts'), c.advertise.host),
        firewall,
        logs: memberLogs,
        javaAgents: new JavaAgents(c.javaAgentsDir),
        containers: new Containers(docker, cluster, this.nodeId, { zone: c.zone, region: c.region }),
        ...providers,
        lease,
        watchdog: new Watchdog({
          dockerHost: c.dockerHost,
          cluster,
          node: this.nodeId,
          pidFile: path.join(dir, 'watchdog.pid'),
          mountRoot: mountRoot(dir),
          staticIps: watchdogIps,
        }),
        log: this.log.child({ part: 'agent' }),
      });
      await this.agent.start();
      const agent = this.agent;
      this.archiver = new Archiver({ db, log: this.log.child({ part: 'archive' }), members: () => agent.runningMembers() });
      this.archiver.start();
      this.agentState = { kind: 'running' };
      this.log.info({ volumes: c.volumes.kind, static_ips: c.staticIps.kind, dns: c.dns.kind, lease_ttl: c.leaseTtl }, 'agent started');
    } catch (err) {
      this.agentState = { kind: 'failed', error: errorMessage(err) };
      this.log.error({ err: errorMessage(err) }, 'the agent could not start: members cannot run on this node');
    }
  }

  /** A certificate for this node signed by `ca` (bootstrap and restore). */
  private async makeOwnCertificate(ca: CaPem): Promise<NodeTls> {
    const kp = generateKeyPair();
    const certPem = await issueNodeCert(ca, {
      nodeId: this.nodeId,
      publicKeyPem: kp.publicKeyPem,
      hosts: [this.config.advertise.host, this.config.name, clusterApiName(this.config.dnsDomain)],
    });
    const tls = { caPem: ca.certPem, certPem, keyPem: kp.keyPem };
    // The CA key waits on disk until the first leader has put it in the controldb.
    saveNodeTls(this.dataDir.path, tls);
    writePrivate(path.join(this.dataDir.path, TLS_DIR, BOOTSTRAP_CA_KEY), ca.keyPem);
    return tls;
  }

  /** The first leader stores the CA, a join token and the operator's bootstrap token in the controldb. */
  private async initializeCluster(): Promise<void> {
    const caKeyFile = path.join(this.dataDir.path, TLS_DIR, BOOTSTRAP_CA_KEY);
    for (let attempt = 0; !this.closing && this.raft?.status().role === 'leader'; attempt++) {
      try {
        if (!this.tokens!.initialized()) {
          if (!fs.existsSync(caKeyFile)) return; // not the node that made the CA: nothing it can do
          const ca = { certPem: this.tls!.caPem, keyPem: fs.readFileSync(caKeyFile, 'utf8') };
          await this.tokens!.initialize(ca, this.config.token);
          this.log.info('stored the cluster CA and a join token in the controldb');
        }
        fs.rmSync(caKeyFile, { force: true });
        return;
      } catch (err) {
        if (attempt % 20 === 19) this.log.warn({ err: errorMessage(err) }, 'could not initialize the cluster secrets yet');
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  /**
   * Join a cluster with a join token: fetch its CA from a --join address,
   * check it against the digest in the token, then prove the token's secret
   * over TLS verified by that CA and get this node's certificate signed.
   */
  private async join(): Promise<NodeTls> {
    const token = this.config.token;
    const parsed = token ? parseToken(token) : undefined;
    if (!token || parsed?.kind !== 'join' || !parsed.caDigest) {
      const what = !token
        ? 'joining needs a join token (FCJ1-…)'
        : parsed?.kind === 'api'
          ? 'that is an API token (FCA1-…); joining needs a join token (FCJ1-…)'
          : 'the token given is not a join token (FCJ1-<CA digest>-<id>.<secret>); joining needs one';
      throw new UserError(`${what} in --token, --token-file or FIRECAMPD_TOKEN; print one with "firecampd token join" on a node of the cluster`);
    }
    const key = pendingKey(this.dataDir.path);
    const deadline = Date.now() + 120_000;
    let lastError = '';
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      for (const target of this.config.join) {
        const addr = formatHostPort(target);
        const client = new ApiClient({ addr, token });
        try {
          const ca = await fetchPinnedCa(`https://${addr}`, parsed.caDigest);
          const pinned = new ApiClient({ addr, token, ca });
          const r = await pinned.raw('POST', '/v1/cluster/join', { ...this.self(), public_key: key.publicKeyPem });
          pinned.close();
          const refusal = (r.json as ApiErrorBody | undefined)?.error?.message;
          if (r.status === 401 || r.status === 409) throw new UserError(`${addr} refused to let this node join: ${refusal ?? r.status}`);
          if (r.status !== 200) throw new Error(refusal ?? `HTTP ${r.status}`);
          const body = r.json as { members: NodeRecord[]; cert: string; ca: string };
          if (caDigest(body.ca) !== parsed.caDigest) throw new UserError(`${addr} answered with another CA than the one it presented`);
          for (const m of body.members) this.seedAddresses.set(m.id, m.addr);
          const tls = { caPem: body.ca, certPem: body.cert, keyPem: key.keyPem };
          saveNodeTls(this.dataDir.path, tls);
          clearPendingKey(this.dataDir.path);
          this.log.info({ via: addr, members: body.members.length }, 'joined the cluster as a learner');
          return tls;
        } catch (err) {
          if (err instanceof UserError && err.status !== 503) throw err;
          lastError = `${addr}: ${errorMessage(err)}`;
        } finally {
          client.close();
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
      if (this.memberSweep) clearInterval(this.memberSweep);
      this.agent?.stop();
      this.archiver?.stop();
      this.catalog?.leadershipChanged(false);
      await this.dns?.close();
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

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
