// Start 3-node clusters on loopback for benchmarks: firecampd (from source)
// and etcd (Debian's etcd-server), each node a real process with fsync on.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ApiClient } from '../src/client.ts';
import { joinToken, nodeClient, readCa } from '../test/helpers/api.ts';
import { REPO, startDaemon, stopDaemon, tempDir, type Running } from '../test/helpers/proc.ts';

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
  return [process.execPath, path.join(REPO, 'dist', 'firecampd.cjs')];
}

export interface BenchCluster {
  name: string;
  endpoints: string[];
  pids: number[];
  /** firecampd only: a kept-alive HTTPS client of an endpoint ("host:port"). */
  client?: (endpoint: string) => ApiClient;
  stop(): Promise<void>;
}

export async function startFirecampd(nodes = 3, token = 'bench-token'): Promise<BenchCluster> {
  const running: Running[] = [];
  const clients = new Map<string, ApiClient>();
  const command = await bundledCommand();
  try {
    const firstDir = tempDir('fc-bench-');
    const first = await startDaemon(['--data-dir', firstDir], command, { FIRECAMPD_TOKEN: token });
    running.push(first);
    const ca = readCa(firstDir);
    const client = (endpoint: string) => {
      let c = clients.get(endpoint);
      if (!c) clients.set(endpoint, (c = nodeClient(endpoint, token, ca, 60_000)));
      return c;
    };
    const join = await joinToken(client(`127.0.0.1:${first.port}`));
    for (let i = 1; i < nodes; i++) {
      running.push(await startDaemon(['--data-dir', tempDir('fc-bench-'), '--join', `127.0.0.1:${first.port}`], command, { FIRECAMPD_TOKEN: join }));
    }
    const endpoints = running.map((r) => `127.0.0.1:${r.port}`);
    await waitForVoters(client(endpoints[0]), nodes);
    return {
      name: 'firecampd',
      endpoints,
      pids: running.map((r) => r.proc.pid!),
      client,
      stop: async () => {
        for (const c of clients.values()) c.close();
        await Promise.all(running.map((r) => stopDaemon(r)));
      },
    };
  } catch (err) {
    for (const c of clients.values()) c.close();
    await Promise.all(running.map((r) => stopDaemon(r, 'SIGKILL')));
    throw err;
  }
}

async function waitForVoters(client: ApiClient, n: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = await client.raw('GET', '/v1/cluster/status').catch(() => null);
    if (r?.status === 200) {
      const s = r.json as { members: { role: string }[]; leader: string | null };
      if (s.leader && s.members.filter((m) => m.role === 'voter').length === n) return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`firecampd cluster did not reach ${n} voters in 60 s`);
}

export async function startEtcd(nodes = 3, basePort = 23790): Promise<BenchCluster> {
  if (!fs.existsSync('/usr/bin/etcd')) throw new Error('etcd is not installed: apt-get install etcd-server');
  const names = Array.from({ length: nodes }, (_, i) => `e${i}`);
  const peer = (i: number) => `http://127.0.0.1:${basePort + 100 + i}`;
  const client = (i: number) => `http://127.0.0.1:${basePort + i}`;
  const initial = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const procs: ChildProcess[] = [];
  const dirs: string[] = [];
  for (let i = 0; i < nodes; i++) {
    const dir = tempDir('etcd-bench-');
    dirs.push(dir);
    const p = spawn(
      '/usr/bin/etcd',
      [
        '--name',
        names[i],
        '--data-dir',
        path.join(dir, 'data'),
        '--listen-client-urls',
        client(i),
        '--advertise-client-urls',
        client(i),
        '--listen-peer-urls',
        peer(i),
        '--initial-advertise-peer-urls',
        peer(i),
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `bench-${process.pid}`,
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: '' } },
    );
    procs.push(p);
  }
  const endpoints = names.map((_, i) => client(i));
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${endpoints[0]}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64('ping'), value: b64('x') }) });
      if (res.ok) break;
    } catch {
      /* starting */
    }
    if (Date.now() > deadline) {
      for (const p of procs) p.kill('SIGKILL');
      throw new Error('etcd cluster did not come up in 30 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    name: 'etcd',
    endpoints,
    pids: procs.map((p) => p.pid!),
    stop: async () => {
      await Promise.all(procs.map((p) => new Promise<void>((res) => (p.exitCode !== null ? res() : (p.once('exit', () => res()), p.kill('SIGTERM'))))));
    },
  };
}

export function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}
