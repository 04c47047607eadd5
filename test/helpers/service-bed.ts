// What the end-to-end tests of a service type share: a test bed of three
// nodes that run members (a dockerd each, loop volumes, static IPs, a client
// namespace), the CLI pointed at it, what `service get` and `service
// credentials` answer, the dockerd a member runs on, test clients run once or
// driven as a load through the client namespace, and the context a failing
// assertion prints.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { TestBed } from '../bed/bed.ts';
import { docker } from '../bed/docker.ts';
import { REPO, runCli, tempDir } from './proc.ts';
import { pollUntil } from './wait.ts';

const execFileAsync = promisify(execFile);

export type Cli = (args: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;

/** The CLI against `addr`, each call required to succeed: its stdout, or the test fails with its stderr and `context`. */
export const cliOk =
  (cli: Cli, addr: string, context: () => string) =>
  async (args: string[]): Promise<string> => {
    const r = await cli([...args, '--addr', addr]);
    if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}: ${r.stderr}\n${context()}`);
    return r.stdout;
  };

/**
 * A backup of `service` made while the load client `command` writes: the last write acknowledged before the backup
 * began (once `warmup` were), the backup as `backup create --wait --json` printed it, and the load's totals.
 */
export async function backupUnderLoad(
  bed: TestBed,
  ok: (args: string[]) => Promise<string>,
  service: string,
  command: string[],
  context: () => string,
  warmup = 100,
): Promise<{ ackedBefore: number; made: { id: string; status: string; parts: { member: string; name: string }[] }; stats: LoadResult }> {
  const load = startLoad(bed, command, context);
  type Made = { id: string; status: string; parts: { member: string; name: string }[] };
  let ackedBefore: number;
  let made: Made;
  try {
    await load.ready();
    ackedBefore = await load.ackedThrough(warmup, 120_000);
    made = JSON.parse(await ok(['backup', 'create', service, '--wait', '--json'])) as Made;
  } finally {
    await load.stop();
  }
  return { ackedBefore, made, stats: load.result() };
}

/** A complete backup of `service`, as `backup list` shows it. */
export async function completeBackup(ok: (args: string[]) => Promise<string>, service: string): Promise<string> {
  const { backups } = JSON.parse(await ok(['backup', 'list', service, '--json'])) as { backups: { id: string; status: string }[] };
  const done = backups.find((b) => b.status === 'complete');
  if (!done) throw new Error(`no complete backup of ${service}: ${JSON.stringify(backups)}`);
  return done.id;
}

export interface ServiceBed {
  bed: TestBed;
  cli: Cli;
  /** The node ids, by bed index. */
  ids: string[];
}

/** Three nodes running members, every agent up, and the CLI with the bed's CA and token. */
export async function startServiceBed(o: { leaseTtl: number; images?: string[]; outside?: boolean }): Promise<ServiceBed> {
  const bed = await TestBed.create({
    nodes: 3,
    clientNamespace: true,
    docker: true,
    ...(o.outside ? { outsideNamespace: true } : {}),
    ...(o.images ? { images: o.images } : {}),
  });
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

/**
 * A member as `service get --json` shows it: the fields the tests of every
 * type read. A test that reads more of it says so with its own type,
 * `MemberView & { role: string | null }`.
 */
export interface MemberView {
  name: string;
  node: string;
  epoch: number;
  ip: string;
  image: string;
  state: string;
}

/** A service as `service get --json` shows it; M is the test's own member type where it reads more than MemberView. */
export interface ServiceView<M extends MemberView = MemberView> {
  status: string;
  message: string;
  members: M[];
}

/**
 * `service get NAME --json`, asked of the node at `addr` (a live one: a dead
 * node answers nothing). A failed command throws its stderr, so that a poll
 * counts it as not yet and shows the CLI's own words as what it last saw.
 */
export async function getService<V extends ServiceView = ServiceView>(cli: Cli, name: string, addr: string): Promise<V> {
  const r = await cli(['service', 'get', name, '--json', '--addr', addr]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as V;
}

export interface Credential {
  secret: string;
  user?: string;
  value: string;
}

/** The service's generated secrets as a user gets them (`service credentials NAME --json`); a failed command fails the test with its stderr. */
export async function serviceCredentials(cli: Cli, name: string, addr: string): Promise<{ name: string; credentials: Credential[] }> {
  const r = await cli(['service', 'credentials', name, '--json', '--addr', addr]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { name: string; credentials: Credential[] };
}

/** The generated password of `user` (admin, super…): what the test's clients log in with, and what no log may hold. */
export async function servicePassword(cli: Cli, name: string, user: string, addr: string): Promise<string> {
  return (await serviceCredentials(cli, name, addr)).credentials.find((c) => c.user === user)!.value;
}

/** `service ca NAME` into a file of its own, as a user saves what a client of the service trusts; its path. */
export async function serviceCaFile(cli: Cli, name: string, addr: string): Promise<string> {
  const r = await cli(['service', 'ca', name, '--addr', addr]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+\n-----END CERTIFICATE-----\n$/);
  const file = path.join(tempDir(), `${name}-ca.crt`);
  fs.writeFileSync(file, r.stdout);
  return file;
}

/** The dockerd of the node member `m` runs on, to look into its container: a member names its node by id, the bed its nodes by index (`ids`). */
export function dockerOf(bed: TestBed, ids: string[], m: { node: string }) {
  return bed.nodes[ids.indexOf(m.node)].docker!;
}

/** nsenter's arguments that run `command` in the client namespace: outside every node, where a client finds the members as a user's would. */
export function inClientNamespace(bed: TestBed, command: string[]): string[] {
  return ['--net=/var/run/netns/' + bed.client!.ns, ...command];
}

/**
 * One TCP connect from namespace `ns` to a member's port (test/helpers/tcp-probe.ts): "open", "refused" or
 * "dropped" (no answer within 2 s: a wall's drop).
 */
export async function tcpProbe(ns: string, host: string, port: number): Promise<string> {
  const probe = [process.execPath, '--import', 'tsx', path.join(REPO, 'test', 'helpers', 'tcp-probe.ts'), host, String(port), '2000'];
  return (await execFileAsync('nsenter', ['--net=/var/run/netns/' + ns, ...probe], { cwd: REPO, timeout: 30_000 })).stdout.trim();
}

/**
 * A service's wall as its users meet it (the service made with `--allow` the client namespace): each member's
 * `ports` dropped from the outside namespace and open from the client namespace.
 */
export async function assertWalled(bed: TestBed, members: readonly { name: string; ip: string; node?: string }[], ports: readonly number[]): Promise<void> {
  for (const m of members) {
    for (const port of ports) {
      const where = `${m.name}:${port}${m.node ? ` on ${m.node}` : ''}`;
      assert.equal(await tcpProbe(bed.outside!.ns, m.ip, port), 'dropped', `${where} from outside the access list`);
      assert.equal(await tcpProbe(bed.client!.ns, m.ip, port), 'open', `${where} from the access list`);
    }
  }
}

/**
 * Runs a test client (test/helpers/*-client.ts) once in the client namespace
 * and gives the JSON of its last stdout line, the result it prints last. A
 * client that fails or outlives `timeoutMs` rejects with execFile's error,
 * which holds its stderr.
 */
export async function runClient<T = unknown>(bed: TestBed, command: string[], timeoutMs: number): Promise<T> {
  const { stdout } = await execFileAsync('nsenter', inClientNamespace(bed, command), { cwd: REPO, timeout: timeoutMs });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
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
  const proc = spawn('nsenter', inClientNamespace(bed, command), { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
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
    /** The lines it printed that carry `key` (a client's own reports, such as cql-client's staleRead). */
    reported: (key: string) => lines().filter((l) => key in l),
    stop: async () => {
      proc.stdin.end();
      await done;
    },
    /**
     * Its totals (its last line with "acked"); a client that never printed them is an error that says how it ended, with
     * the nodes' and members' last log lines (a violation is found only after the fact: they are what there is to go on).
     */
    result: () => {
      const totals = lines()
        .filter((l) => Array.isArray(l.acked))
        .at(-1);
      if (!totals)
        throw new Error(
          `the load client printed no totals (${exit || 'still running'}); its last lines: ${out.trim().split('\n').slice(-3).join(' | ')}; its stderr: ${err.trim() || '(nothing)'}\n${context()}`,
        );
      return totals as unknown as LoadResult;
    },
  };
}
