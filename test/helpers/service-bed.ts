// What the end-to-end tests of a service type share: a test bed of three
// nodes that run members (a dockerd each, loop volumes, static IPs, a client
// namespace), the CLI pointed at it, a load client driven through the
// client namespace, and the context a failing assertion prints.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TestBed } from '../bed/bed.ts';
import { docker } from '../bed/docker.ts';
import { REPO, runCli, tempDir } from './proc.ts';
import { pollUntil } from './wait.ts';

export type Cli = (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;

export interface ServiceBed {
  bed: TestBed;
  cli: Cli;
  /** The node ids, by bed index. */
  ids: string[];
}

/** Three nodes running members, every agent up, and the CLI with the bed's CA and token. */
export async function startServiceBed(o: { leaseTtl: number; images?: string[] }): Promise<ServiceBed> {
  const bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true, ...(o.images ? { images: o.images } : {}) });
  try {
    for (let i = 0; i < 3; i++) await bed.start(i, bed.serviceNodeArgs(o.leaseTtl));
    const caFile = path.join(tempDir(), 'ca.crt');
    fs.copyFileSync(path.join(bed.nodes[0].dataDir, 'tls', 'ca.crt'), caFile);
    const cli: Cli = (args) => runCli([...args, '--ca-file', caFile], { FIRECAMPD_TOKEN: bed.token });
    await pollUntil(
      async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length,
      (n) => n === 3,
      { ms: 60_000, what: 'three agents', context: () => bed.logs(15) },
    );
    return { bed, cli, ids: await bed.nodeIds() };
  } catch (err) {
    await bed.destroy();
    throw err;
  }
}

/** The nodes' last log lines and the last lines of each container of `service` on the live nodes. */
export function serviceContext(bed: TestBed, service: string, live: number[]): string {
  const members = live.flatMap((i) => {
    const d = bed.nodes[i].docker!;
    let names: string[];
    try {
      names = docker(d, ['ps', '-a', '--filter', `name=firecampd-${service}-`, '--format', '{{.Names}}'])
        .split('\n')
        .filter(Boolean);
    } catch (err) {
      return [`--- ${bed.nodes[i].ns}: its dockerd does not answer (${String(err)})`];
    }
    return names.map((n) => {
      let out: string;
      try {
        out = execFileSync('sh', ['-c', `docker -H ${d.host} logs --tail 12 ${n} 2>&1`], { encoding: 'utf8' });
      } catch (err) {
        out = String((err as { stderr?: string }).stderr ?? err);
      }
      return `--- ${bed.nodes[i].ns} ${n}\n${out}`;
    });
  });
  return `${bed.logs(15)}\n${members.join('\n')}`;
}

export interface LoadResult {
  acked: [number, number];
  errors: number;
  longestGapMs: number;
  messages: string[];
}

/**
 * A load client (test/helpers/*-client.ts in its `load` mode) in the client
 * namespace: it writes until its stdin closes, prints {"ready":true} after
 * its first acknowledged write, {"resumedAt"…} after each outage, its
 * progress every 20 writes, and its totals last.
 */
export function startLoad(bed: TestBed, command: string[], context: () => string) {
  const proc = spawn('nsenter', ['--net=/var/run/netns/' + bed.client!.ns, ...command], { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  // Its stderr goes on to ours, and its last lines into the error of a client that ended without totals.
  let err = '';
  proc.stderr.on('data', (d) => {
    process.stderr.write(d as Buffer);
    err = (err + String(d)).slice(-2000);
  });
  let exited = false;
  let exit = '';
  const done = new Promise<void>((r) =>
    proc.once('close', (code, signal) => {
      exit = signal ? `killed by ${signal}` : `exit code ${code}`;
      r();
    }),
  ).then(() => (exited = true));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    ready: () =>
      pollUntil(
        () => out,
        (o) => o.includes('{"ready":true}') || exited,
        { ms: 60_000, what: 'the load client to write', context },
      ),
    resumedAfter: async (since: number, ms: number) =>
      (
        await pollUntil(
          () => lines().find((l) => typeof l.resumedAt === 'number' && l.resumedAt > since),
          (l) => l !== undefined || exited,
          { ms, what: 'a write acknowledged after the fault', context },
        )
      )?.resumedAt as number,
    /** Waits until write `id` is acknowledged (the client prints its progress every 20 writes). */
    ackedThrough: (id: number, ms: number) =>
      pollUntil(
        () => lines().reduce((max, l) => Math.max(max, typeof l.progress === 'number' ? l.progress : 0), 0),
        (n) => n >= id || exited,
        { ms, what: `the load client's write ${id} acknowledged`, context },
      ),
    stop: async () => {
      proc.stdin.end();
      await done;
    },
    /** Its totals (its last line with "acked"); a client that never printed them is an error that says how it ended. */
    result: () => {
      const totals = lines()
        .filter((l) => Array.isArray(l.acked))
        .at(-1);
      if (!totals)
        throw new Error(
          `the load client printed no totals (${exit || 'still running'}); its last lines: ${out.trim().split('\n').slice(-3).join(' | ')}; its stderr: ${err.trim() || '(nothing)'}`,
        );
      return totals as unknown as LoadResult;
    },
  };
}
