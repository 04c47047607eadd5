// npm run bench:failover -- [--runs 3] [--lease-ttl 5] [--json]
// On the network-namespace test bed (3 nodes, a dockerd each, a client
// namespace): create a Redis service (primary + replica), time create→ACTIVE;
// write keys, kill the node running the primary as a machine dies, time until
// the primary answers on its address with every key. Medians of the runs.
import { execFile } from 'node:child_process';
import dns from 'node:dns';
import { promisify } from 'node:util';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { TestBed } from '../test/bed/bed.ts';

const execFileAsync = promisify(execFile);
const KEYS = 1000;
const TARGETS = { create_ms: 15_000, failover_ms: 10_000 };

interface Run {
  create_ms: number;
  failover_ms: number;
  /** Whether the node that died was also the Raft leader (an election comes first, and the new leader restarts every lease's TTL). */
  victim_was_leader: boolean;
}

async function until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function oneRun(leaseTtl: number): Promise<Run> {
  const bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true });
  try {
    for (let i = 0; i < 3; i++) {
      await bed.start(i, ['--volumes', `loop:${bed.shared}`, '--static-ips', 'local:eth0', '--ip-pool', '10.77.0.200-10.77.0.220', '--lease-ttl', String(leaseTtl), '--dns-domain', 'fc.test']);
    }
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    await until(async () => (await status(0)).members.filter((m: { role: string }) => m.role === 'voter').length === 3, 30_000, '3 voters');
    const ids = ((await status(0)).members as { id: string; name: string }[]).reduce((m, x) => m.set(x.id, bed.nodes.findIndex((n) => n.ns === x.name)), new Map<string, number>());
    // Every agent holds its lease before the clock starts: placement needs live nodes.
    await until(async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3, 30_000, 'the agents');

    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'redis', name: 'cache', replicas: 2, volumeSizeMiB: 64 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    const service = async (i: number) => (await bed.api(i, 'GET', '/v1/service?name=cache')).json;
    await until(async () => (await service(0)).status === 'ACTIVE', 60_000, 'ACTIVE');
    const create_ms = Date.now() - t0;

    const primary = (await service(0)).members.find((m: { name: string }) => m.name === 'cache-0');
    const redis = async (args: string[], input?: string) => {
      const p = execFileAsync('nsenter', [`--net=/var/run/netns/${bed.client!.ns}`, 'redis-cli', '-h', primary.ip, ...args], { encoding: 'utf8', timeout: 1000 });
      if (input !== undefined) p.child.stdin!.end(input);
      return (await p).stdout.trim();
    };
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([`${bed.nodes[0]!.ip}:53`]);
    if ((await r.resolve4('cache-0.cache.fc.test'))[0] !== primary.ip) throw new Error('DNS does not point at the primary');
    await redis(['--pipe'], Array.from({ length: KEYS }, (_, i) => `SET k${i} v${i}\n`).join(''));
    await new Promise((res) => setTimeout(res, 1500)); // appendfsync everysec

    const victim = ids.get(primary.node)!;
    const victim_was_leader = (await status(0)).leader === primary.node;
    const t1 = Date.now();
    bed.die(victim);
    await until(async () => (await redis(['DBSIZE'])) === String(KEYS), 120_000, 'the primary back with its keys');
    const failover_ms = Date.now() - t1;
    return { create_ms, failover_ms, victim_was_leader };
  } finally {
    await bed.destroy();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('runs', { type: 'number', default: 3 })
    .option('lease-ttl', { type: 'number', default: 5, describe: 'the nodes\' --lease-ttl: failover waits for it to expire' })
    .option('json', { type: 'boolean', default: false })
    .strict()
    .parseAsync();
  const runs: Run[] = [];
  for (let i = 0; i < argv.runs; i++) {
    runs.push(await oneRun(argv.leaseTtl));
    const r = runs.at(-1)!;
    if (!argv.json) process.stderr.write(`run ${i + 1}/${argv.runs}: create ${r.create_ms} ms, failover ${r.failover_ms} ms${r.victim_was_leader ? ' (the dead node was the Raft leader)' : ''}\n`);
  }
  const result = {
    lease_ttl_s: argv.leaseTtl,
    runs,
    median: { create_ms: median(runs.map((r) => r.create_ms)), failover_ms: median(runs.map((r) => r.failover_ms)) },
    targets: TARGETS,
  };
  if (argv.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const row = (k: 'create_ms' | 'failover_ms') => `${k.padEnd(12)}${String(result.median[k]).padStart(8)}   ${runs.map((r) => r[k]).join(', ').padEnd(24)}${String(TARGETS[k]).padStart(8)}`;
  process.stdout.write(`lease TTL ${argv.leaseTtl} s, ${argv.runs} runs\n${'what'.padEnd(12)}${'median'.padStart(8)}   ${'runs'.padEnd(24)}${'target'.padStart(8)}\n${row('create_ms')}\n${row('failover_ms')}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench:failover: ${(err as Error).message}\n`);
  process.exit(1);
});
