// A cluster of real firecampd processes on loopback, for tests. The first
// node bootstraps with TOKEN as its API token; the others join with the join
// token it made.
import type { ApiClient } from '../../src/client.ts';
import { joinToken, nodeClient, readCa } from './api.ts';
import { startDaemon, stopDaemon, tempDir, type Running } from './proc.ts';

export const TOKEN = 'test-cluster-token';

export interface TestNode {
  dir: string;
  port: number;
  running: Running | null;
}

export class LoopbackCluster {
  readonly nodes: TestNode[] = [];
  ca = '';
  join = '';
  private readonly clients = new Map<number, ApiClient>();

  /** `env` goes to every daemon (fault switches, for one). */
  constructor(private readonly env: NodeJS.ProcessEnv = {}) {}

  static async start(n: number, env: NodeJS.ProcessEnv = {}): Promise<LoopbackCluster> {
    const c = new LoopbackCluster(env);
    try {
      for (let i = 0; i < n; i++) await c.add();
      await c.waitFor(async () => (await c.status(0)).members.filter((m) => m.role === 'voter').length === n, 30_000, `${n} voters`);
      return c;
    } catch (err) {
      await c.stopAll();
      throw err;
    }
  }

  /** Start a new node; every node after the first joins the first. */
  async add(): Promise<TestNode> {
    const dir = tempDir('fc-cluster-');
    const first = this.nodes.length === 0;
    if (!first && !this.join) this.join = await joinToken(this.client(0));
    const join = first ? [] : ['--join', `127.0.0.1:${this.nodes[0].port}`];
    const running = await startDaemon(['--data-dir', dir, '--name', `n${this.nodes.length}`, ...join], undefined, {
      ...this.env,
      FIRECAMPD_TOKEN: first ? TOKEN : this.join,
    });
    const node = { dir, port: running.port, running };
    this.nodes.push(node);
    if (first) this.ca = readCa(dir);
    return node;
  }

  async kill(i: number): Promise<void> {
    const n = this.nodes[i];
    if (n.running) await stopDaemon(n.running, 'SIGKILL');
    n.running = null;
  }

  async restart(i: number): Promise<void> {
    const n = this.nodes[i];
    n.running = await startDaemon(['--data-dir', n.dir, '--bind', `127.0.0.1:${n.port}`], undefined, this.env);
  }

  pause(i: number): void {
    this.nodes[i].running?.proc.kill('SIGSTOP');
  }

  resume(i: number): void {
    this.nodes[i].running?.proc.kill('SIGCONT');
  }

  /** A kept-alive client of node i with the test token. */
  client(i: number): ApiClient {
    let c = this.clients.get(i);
    if (!c) {
      c = nodeClient(`127.0.0.1:${this.nodes[i].port}`, TOKEN, this.ca);
      this.clients.set(i, c);
    }
    return c;
  }

  async request(i: number, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
    return this.client(i).raw(method, path, body);
  }

  async status(i: number): Promise<{ leader: string | null; role: string; node: string; members: { id: string; role: string }[] }> {
    const r = await this.request(i, 'GET', '/v1/cluster/status');
    return r.json;
  }

  async leaderIndex(): Promise<number> {
    let found = -1;
    await this.waitFor(
      async () => {
        for (let i = 0; i < this.nodes.length; i++) {
          if (!this.nodes[i].running) continue;
          const s = await this.status(i).catch(() => null);
          if (s?.role === 'leader') {
            found = i;
            return true;
          }
        }
        return false;
      },
      20_000,
      'a leader',
    );
    return found;
  }

  async put(i: number, key: string, value: string): Promise<{ status: number; json: any }> {
    return this.request(i, 'POST', '/v1/kv/put', { key, value });
  }

  async get(i: number, key: string, serializable = false): Promise<string | undefined> {
    const r = await this.request(i, 'POST', '/v1/kv/range', { key, serializable });
    if (r.status !== 200) throw new Error(`range on node ${i}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json.kvs[0]?.value;
  }

  async waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    let last: Error | undefined;
    while (Date.now() < deadline) {
      try {
        if (await cond()) return;
      } catch (err) {
        last = err as Error;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
  }

  async stopAll(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (let i = 0; i < this.nodes.length; i++) this.resume(i);
    await Promise.all(this.nodes.flatMap((n) => (n.running ? [stopDaemon(n.running, 'SIGKILL')] : [])));
  }
}
