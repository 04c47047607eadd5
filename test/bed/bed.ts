// A multi-host test bed on one machine: N firecampd processes, each in its own
// network namespace with its own address (10.77.0.11, .12, …), reachable from
// the root namespace through a bridge. Tests kill, pause, restart and
// partition them. destroy() removes everything the bed made, and runs on exit
// too, so a failing or interrupted test leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { ApiClient } from '../../src/client.ts';
import { joinToken, nodeClient, readCa } from '../helpers/api.ts';
import { CLI_ENTRY, REPO, tempDir } from '../helpers/proc.ts';
import { mountsUnder, requireDocker, startDockerd, stopDockerd, type NodeDocker } from './docker.ts';
import { fetchJavaAgents, importImages, JAVA_AGENTS_DIR, RECIPES, withExporters } from '../../scripts/images.ts';
import { block, createNetwork, destroyNetwork, removeLeftovers, requireTools, sh, unblockAll, type Network } from './netns.ts';

export const PORT = 27040;
/** Set FCB_LOG_DIR to keep every line each node logs (its file survives the bed), to study a run afterwards. */
const LOG_DIR = process.env.FCB_LOG_DIR;
if (LOG_DIR) fs.mkdirSync(LOG_DIR, { recursive: true });

export interface BedNode {
  index: number;
  ns: string;
  ip: string;
  addr: string;
  dataDir: string;
  proc: ChildProcess | null;
  logs: string[];
  docker?: NodeDocker;
}

export interface BedOptions {
  nodes: number;
  token?: string;
  /** A namespace for clients outside every node (the address after the nodes'). */
  clientNamespace?: boolean;
  /** A second one after it, for a client a service's access list leaves out. */
  outsideNamespace?: boolean;
  /** Start every node after the first with --join to node 0 (default), or each on its own. */
  join?: boolean;
  /** Give every node its own dockerd (with the test images loaded), and a shared directory for loop volumes. */
  docker?: boolean;
  /**
   * The images loaded into each node's dockerd (names of scripts/images.ts' recipes), each type's with its metrics
   * exporter's. Default: every one but the JVM images (ZooKeeper, Kafka: a few hundred MB each), which a test that
   * needs them names.
   */
  images?: string[];
}

let live: TestBed | null = null;
const cleanupOnExit = () => live?.destroySync();
process.on('exit', cleanupOnExit);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanupOnExit();
    process.exit(130);
  });
}

export class TestBed {
  readonly nodes: BedNode[] = [];
  readonly token: string;
  client: { ns: string; ip: string } | null = null;
  outside: { ns: string; ip: string } | null = null;
  private net: Network | null = null;
  private readonly join: boolean;
  /** The bridge's address in the root namespace: the test process itself, as the nodes reach it. */
  get gateway(): string {
    if (!this.net) throw new Error('the test bed has no network');
    return this.net.gateway;
  }
  /** Storage every node reaches, for loop volumes (the same filesystem: the namespaces share it). */
  shared = '';
  private joinToken = '';
  private ca = '';
  private readonly clients = new Map<string, ApiClient>();

  private constructor(opts: BedOptions) {
    this.token = opts.token ?? 'test-bed-token';
    this.join = opts.join ?? true;
  }

  static async create(opts: BedOptions): Promise<TestBed> {
    requireTools();
    if (live) throw new Error('one test bed at a time: destroy the last one first');
    removeLeftovers();
    const bed = new TestBed(opts);
    live = bed;
    try {
      const names = [
        ...Array.from({ length: opts.nodes }, (_, i) => `n${i + 1}`),
        ...(opts.clientNamespace ? ['client'] : []),
        ...(opts.outsideNamespace ? ['outside'] : []),
      ];
      bed.net = createNetwork(names.length, '10.77.0', 11, names);
      bed.net.hosts
        .slice(0, opts.nodes)
        .forEach((h, i) => bed.nodes.push({ index: i, ns: h.ns, ip: h.ip, addr: `${h.ip}:${PORT}`, dataDir: tempDir('fcbed-'), proc: null, logs: [] }));
      if (opts.clientNamespace) {
        const h = bed.net.hosts[opts.nodes];
        bed.client = { ns: h.ns, ip: h.ip };
      }
      if (opts.outsideNamespace) {
        const h = bed.net.hosts.at(-1)!;
        bed.outside = { ns: h.ns, ip: h.ip };
      }
      if (opts.docker) {
        const images = withExporters(opts.images ?? RECIPES.filter((r) => !r.maven?.length).map((r) => r.image));
        requireDocker(images);
        bed.shared = tempDir('fcbed-shared-');
        for (const n of bed.nodes) {
          n.docker = await startDockerd(n.ns);
          importImages(n.docker.host, images);
        }
        await fetchJavaAgents();
      }
      return bed;
    } catch (err) {
      bed.destroySync();
      throw err;
    }
  }

  /**
   * The flags of a node that runs service members on the bed: loop volumes on
   * the shared storage, static IPs on eth0 from one pool, names under fc.test.
   */
  serviceNodeArgs(leaseTtl: number): string[] {
    return [
      '--volumes',
      `loop:${this.shared}`,
      '--static-ips',
      'local:eth0',
      '--ip-pool',
      '10.77.0.200-10.77.0.220',
      '--lease-ttl',
      String(leaseTtl),
      '--dns-domain',
      'fc.test',
      // The namespaces reach no Maven Central: the agents members' JVMs load for metrics, fetched by create.
      '--java-agents-dir',
      JAVA_AGENTS_DIR,
    ];
  }

  /** Start node i in its namespace and wait until it serves. */
  async start(i: number, extraArgs: string[] = []): Promise<void> {
    const n = this.nodes[i];
    const joining = this.join && i > 0 && !fs.existsSync(path.join(n.dataDir, 'tls', 'node.crt'));
    const join = joining ? ['--join', this.nodes[0].addr] : [];
    if (joining && !this.joinToken) this.joinToken = await joinToken(this.apiClient(0));
    const args = ['--net=/var/run/netns/' + n.ns, process.execPath, '--import', 'tsx', CLI_ENTRY];
    args.push('--data-dir', n.dataDir, '--bind', n.addr, '--advertise', n.addr, '--name', n.ns, '--dns-listen', `${n.ip}:53`, ...join, ...extraArgs);
    if (n.docker) args.push('--docker-host', n.docker.host);
    const proc = spawn('nsenter', args, {
      cwd: REPO,
      env: { ...process.env, FIRECAMPD_TOKEN: joining ? this.joinToken : this.token },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    n.proc = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${i} did not start in 30 s:\n${n.logs.slice(-20).join('\n')}`)), 30_000);
      readline.createInterface({ input: proc.stderr }).on('line', (line) => {
        n.logs.push(line);
        if (n.logs.length > 2000) n.logs.shift();
        if (LOG_DIR) fs.appendFileSync(path.join(LOG_DIR, `${n.ns}.log`), line + '\n');
        if (line.includes('"firecampd started"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`node ${i} exited with ${code}:\n${n.logs.slice(-20).join('\n')}`));
      });
    });
  }

  async startAll(): Promise<void> {
    for (let i = 0; i < this.nodes.length; i++) await this.start(i);
  }

  async kill(i: number): Promise<void> {
    const p = this.nodes[i].proc;
    this.nodes[i].proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGCONT');
    p.kill('SIGKILL');
    await exited;
  }

  async restart(i: number): Promise<void> {
    await this.kill(i);
    await this.start(i);
  }

  /**
   * What a dead machine looks like from outside: every process in node i's
   * namespace (daemon, watchdog, dockerd, containers) killed, its link down,
   * and none of its mounts or loop devices held any more.
   */
  die(i: number): void {
    const n = this.nodes[i];
    const pids = sh('ip', ['netns', 'pids', n.ns]).split('\n').filter(Boolean);
    if (pids.length > 0) sh('kill', ['-9', ...pids], { ignoreErrors: true });
    n.proc = null;
    sh('ip', ['-n', n.ns, 'link', 'set', 'eth0', 'down']);
    for (const mnt of mountsUnder(n.dataDir).reverse()) sh('umount', ['-l', mnt], { ignoreErrors: true });
    for (const img of fs.readdirSync(this.shared).filter((f) => f.endsWith('.img'))) {
      // Only loop devices whose filesystem is mounted nowhere: those were the dead node's.
      for (const line of sh('losetup', ['-j', path.join(this.shared, img)]).split('\n')) {
        const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
        if (dev && !fs.readFileSync('/proc/self/mounts', 'utf8').includes(`${dev} `)) sh('losetup', ['-d', dev], { ignoreErrors: true });
      }
    }
  }

  /** Once every node is a voter: their node ids, by bed index. */
  async nodeIds(timeoutMs = 60_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const members = ((await this.api(0, 'GET', '/v1/cluster/status').catch(() => undefined))?.json?.members ?? []) as {
        id: string;
        name: string;
        role: string;
      }[];
      const ids = this.nodes.map((n) => members.find((m) => m.name === n.ns && m.role === 'voter')?.id);
      if (ids.every((id) => id !== undefined)) return ids;
      if (Date.now() > deadline) throw new Error(`not every node is a voter after ${timeoutMs} ms: ${JSON.stringify(members)}\n${this.logs(10)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  /**
   * A crash of node i's software, not of the machine: firecampd and dockerd
   * killed with SIGKILL. The containers run on under their shims, with their
   * addresses and mounts, until the node's watchdog fences them.
   */
  async crash(i: number): Promise<void> {
    const d = this.nodes[i].docker;
    if (!d) throw new Error('crash() needs a test bed with docker: true');
    const pid = Number(fs.readFileSync(path.join(d.root, 'docker.pid'), 'utf8'));
    await this.kill(i);
    process.kill(pid, 'SIGKILL');
  }

  pause(i: number): void {
    this.nodes[i].proc?.kill('SIGSTOP');
  }

  resume(i: number): void {
    this.nodes[i].proc?.kill('SIGCONT');
  }

  /** Cut the network between two groups of nodes; with oneWay only traffic from A to B is dropped. */
  partition(a: number[], b: number[], opts: { oneWay?: boolean } = {}): void {
    for (const i of a) for (const j of b) block(this.nodes[i].ns, this.nodes[j].ip);
    if (!opts.oneWay) for (const j of b) for (const i of a) block(this.nodes[j].ns, this.nodes[i].ip);
  }

  heal(): void {
    for (const n of this.nodes) unblockAll(n.ns);
  }

  /** A kept-alive HTTPS client of node i's API from the root namespace, with the bed's token. */
  apiClient(i: number, timeoutMs = 5000): ApiClient {
    const key = `${i}/${timeoutMs}`;
    let c = this.clients.get(key);
    if (!c) {
      this.ca ||= readCa(this.nodes[0].dataDir);
      c = nodeClient(this.nodes[i].addr, this.token, this.ca, timeoutMs);
      this.clients.set(key, c);
    }
    return c;
  }

  /** A request to node i's API from the root namespace. */
  async api(i: number, method: string, urlPath: string, body?: unknown, timeoutMs = 5000): Promise<{ status: number; json: any }> {
    return this.apiClient(i, timeoutMs).raw(method, urlPath, body);
  }

  /** Run a command inside a namespace. */
  execIn(ns: string, cmd: string, args: string[]): string {
    return sh('nsenter', [`--net=/var/run/netns/${ns}`, cmd, ...args]);
  }

  /** The last lines each node logged, for a failing test's message. */
  logs(lines = 30): string {
    return this.nodes.map((n) => `--- ${n.ns}\n${n.logs.slice(-lines).join('\n')}`).join('\n');
  }

  async destroy(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await Promise.all(this.nodes.map((_, i) => this.kill(i)));
    this.destroySync();
  }

  /** Synchronous, so that it can run in an exit handler. */
  destroySync(): void {
    for (const n of this.nodes) {
      if (n.proc && n.proc.exitCode === null) {
        n.proc.kill('SIGCONT');
        n.proc.kill('SIGKILL');
      }
      n.proc = null;
      killWatchdog(n.dataDir);
      if (n.docker) stopDockerd(n.docker);
      n.docker = undefined;
      // Whatever still runs in the namespace (containers orphaned by a killed dockerd, their shims, containerd).
      const pids = sh('ip', ['netns', 'pids', n.ns], { ignoreErrors: true }).split('\n').filter(Boolean);
      if (pids.length > 0) sh('kill', ['-9', ...pids], { ignoreErrors: true });
      // Loop volumes the node mounted, and their loop devices.
      for (const mnt of mountsUnder(n.dataDir).reverse()) sh('umount', ['-l', mnt], { ignoreErrors: true });
    }
    if (this.shared) {
      for (const img of fs.existsSync(this.shared) ? fs.readdirSync(this.shared).filter((f) => f.endsWith('.img')) : []) {
        for (const line of sh('losetup', ['-j', path.join(this.shared, img)], { ignoreErrors: true }).split('\n')) {
          const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
          if (dev) sh('losetup', ['-d', dev], { ignoreErrors: true });
        }
      }
    }
    // What a test started in the client and outside namespaces (its Prometheus, clients) goes with them, even when the test did not stop it.
    for (const ns of [this.client?.ns, this.outside?.ns]) {
      if (!ns) continue;
      const pids = sh('ip', ['netns', 'pids', ns], { ignoreErrors: true }).split('\n').filter(Boolean);
      if (pids.length > 0) sh('kill', ['-9', ...pids], { ignoreErrors: true });
    }
    if (this.net) destroyNetwork(this.net);
    this.net = null;
    if (live === this) live = null;
  }
}

/** The agent's fencing watchdog outlives a killed daemon on purpose; the bed removes it with the node. */
function killWatchdog(dataDir: string): void {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'watchdog.pid'), 'utf8'));
    if (pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdog')) process.kill(pid, 'SIGKILL');
  } catch {
    /* none */
  }
}
