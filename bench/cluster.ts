// Start 3-node clusters on loopback for benchmarks: firecampd (from source)
// and etcd (Debian's etcd-server), each node a real process with fsync on,
// both serving clients over HTTPS (ECDSA P-256 certificates) and their peers
// over mutual TLS, each reached through one BenchClient (https-client.ts).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO, startDaemon, tempDir, type Running } from '../test/helpers/proc.ts';
import { BenchClient } from './https-client.ts';

/**
 * Benchmarks run firecampd as it ships — the esbuild bundle, built here from
 * the current source — not through the TypeScript loader used by tests.
 */
async function bundledCommand(): Promise<string[]> {
  const { buildBundle } = (await import(path.join(REPO, 'esbuild.config.mjs'))) as { buildBundle: () => Promise<void> };
  const cwd = process.cwd();
  process.chdir(REPO);
  try {
    await buildBundle();
  } finally {
    process.chdir(cwd);
  }
  // BENCH_NODE_FLAGS: node's own flags for the daemons (`--cpu-prof --cpu-prof-dir=DIR` to profile them;
  // node refuses --cpu-prof in NODE_OPTIONS; no FIRECAMPD_ prefix, the daemon reads those as its flags). A profile is written when a daemon exits on the bench's SIGTERM.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  return [process.execPath, ...flags, path.join(REPO, 'dist', 'firecampd.cjs')];
}

/**
 * The malloc settings of the shipped systemd unit (packaging/firecampd.service), so that the bench measures a node as it
 * runs there. They change only its memory: see docs/performance.md, "A small node".
 */
function unitEnvironment(): NodeJS.ProcessEnv {
  const unit = fs.readFileSync(path.join(REPO, 'packaging', 'firecampd.service'), 'utf8');
  const tunables = /^Environment=GLIBC_TUNABLES=(\S+)$/m.exec(unit);
  if (!tunables) throw new Error('packaging/firecampd.service sets no GLIBC_TUNABLES');
  return { GLIBC_TUNABLES: tunables[1] };
}

export interface BenchCluster {
  name: 'firecampd' | 'etcd';
  /** "https://127.0.0.1:PORT" of each node; pids[i] is endpoints[i]'s process. */
  endpoints: string[];
  pids: number[];
  /** The cluster's one client: a kept-alive HTTPS agent with the cluster's CA (and, for firecampd, its token). */
  client: BenchClient;
  /** The endpoint of the node that is the Raft leader now, as that node itself says. */
  leader(): Promise<string>;
  /** Stop the nodes (SIGTERM, then SIGKILL after 10 s), close the client, remove the data dirs. */
  stop(): Promise<void>;
  /** Synchronous last resort (a signal, an exit): SIGKILL every node still running. */
  kill(): void;
  /** firecampd only: the pid of node i's fencing watchdog, a process the daemon starts beside itself. */
  watchdogPid?(i: number): number | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Wait for a child to exit; SIGKILL it if it has not within ms. */
async function stopChild(proc: ChildProcess, exited: Promise<unknown>, signal: NodeJS.Signals, ms = 10_000): Promise<void> {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), ms)))]);
  clearTimeout(timer);
  if (late) {
    proc.kill('SIGKILL');
    await exited;
  }
}

/** Poll `probe` every 200 ms until it returns a value, for at most ms; throws `what` then. */
async function poll<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(200);
  }
  throw new Error(`${what} in ${ms / 1000} s${last ? `: ${last}` : ''}`);
}

/** The endpoint whose node says it leads; polled for at most 15 s (an election). */
function findLeader(endpoints: string[], isLeader: (endpoint: string) => Promise<boolean>): Promise<string> {
  return poll('no node said it was the leader', 15_000, async () => {
    for (const e of endpoints) if (await isLeader(e).catch(() => false)) return e;
    return undefined;
  });
}

/** The watchdog named by a firecampd data dir's watchdog.pid, if that pid is still a watchdog. */
function watchdogOf(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'watchdog.pid'), 'utf8'));
    return pid > 0 && fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdog') ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILL the nodes' watchdogs: with no containers to fence they would only idle until their last deadline (a lease TTL). */
function killWatchdogs(dirs: string[]): void {
  for (const d of dirs) {
    const pid = watchdogOf(d);
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
  }
}

export async function startFirecampd(nodes: number, maxSockets: number, token = 'bench-token'): Promise<BenchCluster> {
  const running: Running[] = [];
  const dirs: string[] = [];
  let client: BenchClient | undefined;
  const command = await bundledCommand();
  const stopAll = async (signal: NodeJS.Signals) => {
    client?.close();
    await Promise.all(running.map((r) => stopChild(r.proc, r.exited, signal)));
    killWatchdogs(dirs);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  };
  try {
    dirs.push(tempDir('fc-bench-'));
    const env = unitEnvironment();
    const first = await startDaemon(['--data-dir', dirs[0]], command, { ...env, FIRECAMPD_TOKEN: token });
    running.push(first);
    client = new BenchClient(fs.readFileSync(path.join(dirs[0], 'tls', 'ca.crt'), 'utf8'), { authorization: `Bearer ${token}` }, maxSockets);
    const c = client;
    const firstEndpoint = `https://127.0.0.1:${first.port}`;
    const join = await poll('no join token', 20_000, async () => {
      const r = await c.request(firstEndpoint, 'GET', '/v1/tokens/join');
      if (r.status !== 200) throw new Error(`HTTP ${r.status} ${JSON.stringify(r.json)}`);
      return r.json.token as string;
    });
    for (let i = 1; i < nodes; i++) {
      dirs.push(tempDir('fc-bench-'));
      running.push(await startDaemon(['--data-dir', dirs[i], '--join', `127.0.0.1:${first.port}`], command, { ...env, FIRECAMPD_TOKEN: join }));
    }
    const endpoints = running.map((r) => `https://127.0.0.1:${r.port}`);
    await poll(`firecampd cluster did not reach ${nodes} voters`, 60_000, async () => {
      const r = await c.request(endpoints[0], 'GET', '/v1/cluster/status');
      const s = r.json as { members?: { role: string }[]; leader?: string | null };
      return r.status === 200 && s.leader && s.members?.filter((m) => m.role === 'voter').length === nodes ? true : undefined;
    });
    return {
      name: 'firecampd',
      endpoints,
      pids: running.map((r) => r.proc.pid!),
      client,
      leader: () =>
        findLeader(endpoints, async (e) => {
          const r = await c.request(e, 'GET', '/v1/cluster/status');
          const s = r.json as { node?: string; leader?: string | null };
          return r.status === 200 && !!s.node && s.node === s.leader;
        }),
      stop: () => stopAll('SIGTERM'),
      kill: () => {
        running.forEach((r) => r.proc.kill('SIGKILL'));
        killWatchdogs(dirs);
      },
      watchdogPid: (i) => watchdogOf(dirs[i]),
    };
  } catch (err) {
    await stopAll('SIGKILL');
    throw err;
  }
}

/** A private CA and one certificate for 127.0.0.1 (server and client use), ECDSA P-256 like firecampd's, made by the openssl CLI. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => path.join(dir, n);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=bench etcd CA']);
  openssl(['req', '-new', ...ec, '-keyout', f('node.key'), '-out', f('node.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(
    f('node.ext'),
    'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  const sign = ['x509', '-req', '-in', f('node.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2'];
  openssl([...sign, '-extfile', f('node.ext'), '-out', f('node.crt')]);
  return { ca: f('ca.crt'), cert: f('node.crt'), key: f('node.key') };
}

export async function startEtcd(nodes: number, maxSockets: number, basePort = 23790): Promise<BenchCluster> {
  if (!fs.existsSync('/usr/bin/etcd')) throw new Error('etcd is not installed: apt-get install etcd-server');
  const top = tempDir('etcd-bench-');
  const tls = makeCerts(top);
  const client = new BenchClient(fs.readFileSync(tls.ca, 'utf8'), {}, maxSockets);
  const names = Array.from({ length: nodes }, (_, i) => `e${i}`);
  const peer = (i: number) => `https://127.0.0.1:${basePort + 100 + i}`;
  const endpoints = names.map((_, i) => `https://127.0.0.1:${basePort + i}`);
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const procs: { proc: ChildProcess; exited: Promise<unknown>; stderr: string[] }[] = [];
  const stopAll = async (signal: NodeJS.Signals) => {
    client.close();
    await Promise.all(procs.map((p) => stopChild(p.proc, p.exited, signal)));
    fs.rmSync(top, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < nodes; i++) {
      // Clients: TLS with a server certificate, no client certificates (firecampd's API takes a token instead).
      // Peers: mutual TLS, as firecampd's peers.
      const args = ['--name', names[i], '--data-dir', path.join(top, names[i]), '--log-level', 'error'];
      args.push('--listen-client-urls', endpoints[i], '--advertise-client-urls', endpoints[i], '--cert-file', tls.cert, '--key-file', tls.key);
      args.push('--listen-peer-urls', peer(i), '--initial-advertise-peer-urls', peer(i));
      args.push('--peer-cert-file', tls.cert, '--peer-key-file', tls.key, '--peer-trusted-ca-file', tls.ca, '--peer-client-cert-auth');
      args.push('--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bench-${process.pid}`);
      const proc = spawn('/usr/bin/etcd', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: '' } });
      const stderr: string[] = [];
      // Read stderr always: a full pipe would stall etcd. Keep the last lines for an error message.
      proc.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr.push(d);
        if (stderr.length > 20) stderr.shift();
      });
      procs.push({ proc, exited: new Promise((r) => proc.once('exit', r)), stderr });
    }
    await poll('etcd cluster did not come up', 30_000, async () => {
      const dead = procs.find((p) => p.proc.exitCode !== null || p.proc.signalCode !== null);
      if (dead) throw new Error(`an etcd node exited: ${dead.stderr.join('').slice(-2000)}`);
      const r = await client.request(endpoints[0], 'POST', '/v3/kv/put', { key: b64('ping'), value: b64('x') });
      return r.status === 200 ? true : undefined;
    });
    return {
      name: 'etcd',
      endpoints,
      pids: procs.map((p) => p.proc.pid!),
      client,
      leader: () =>
        findLeader(endpoints, async (e) => {
          const r = await client.request(e, 'POST', '/v3/maintenance/status', {});
          const s = r.json as { leader?: string; header?: { member_id?: string } };
          return r.status === 200 && !!s.leader && s.leader === s.header?.member_id;
        }),
      stop: () => stopAll('SIGTERM'),
      kill: () => procs.forEach((p) => p.proc.kill('SIGKILL')),
    };
  } catch (err) {
    await stopAll('SIGKILL');
    throw err;
  }
}

export function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}
