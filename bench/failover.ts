// npm run bench:failover -- [--runs 4] [--lease-ttl 5] [--json]
// On the network-namespace test bed (3 nodes, a dockerd each, a client
// namespace): create a Redis cluster (3 shards × a master and a replica),
// time create→ACTIVE; write keys to one master (with the service's generated
// password, as every member requires it), kill -9 the firecampd and
// dockerd of its node, time until every member of that node answers again on
// its address, elsewhere, in a healthy cluster, with the keys readable.
// Runs take turns killing a follower node and the leader node. Medians of
// the runs, and of each kind.
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

async function oneRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  const bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true });
  try {
    for (let i = 0; i < 3; i++) {
      await bed.start(i, [
        '--volumes',
        `loop:${bed.shared}`,
        '--static-ips',
        'local:eth0',
        '--ip-pool',
        '10.77.0.200-10.77.0.220',
        '--lease-ttl',
        String(leaseTtl),
        '--dns-domain',
        'fc.test',
      ]);
    }
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const ids = await bed.nodeIds();
    // Every agent holds its lease before the clock starts: placement needs live nodes.
    await until(async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3, 30_000, 'the agents');

    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'redis', name: 'cache', redis: { shards: 3, replicasPerShard: 1 }, volumeSizeMiB: 64 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    const service = async (i: number) => (await bed.api(i, 'GET', '/v1/service?name=cache')).json as { status: string; members: Member[] };
    await until(async () => (await service(0)).status === 'ACTIVE', 60_000, 'ACTIVE');
    const create_ms = Date.now() - t0;

    // Every member requires the service's password: what `firecampd service credentials cache` shows.
    const creds = await bed.api(0, 'GET', '/v1/service/credentials?name=cache');
    const password = (creds.json as { credentials?: { secret: string; value: string }[] }).credentials?.find((c) => c.secret === 'password')?.value;
    if (creds.status !== 200 || !password) throw new Error(`credentials: ${creds.status} ${creds.status === 200 ? 'no password' : JSON.stringify(creds.json)}`);
    // In REDISCLI_AUTH, not on redis-cli's command line. (redis-cli exits 0 on an error reply: callers compare what it printed.)
    const env = { ...process.env, REDISCLI_AUTH: password };
    const redis = async (ip: string, args: string[], input?: string) => {
      const p = execFileAsync('nsenter', [`--net=/var/run/netns/${bed.client!.ns}`, 'redis-cli', '-h', ip, ...args], { encoding: 'utf8', timeout: 1000, env });
      if (input !== undefined) p.child.stdin!.end(input);
      return (await p).stdout.trim();
    };
    const members = (await service(0)).members;
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([`${bed.nodes[0].ip}:53`]);
    // Read once: node 0's linearizable read saw the service ACTIVE, and every name was written before its member first ran.
    for (const m of members) if ((await r.resolve4(m.dns))[0] !== m.ip) throw new Error(`DNS does not point ${m.dns} at ${m.ip}`);
    // The keys of one hash slot, written to the master that serves it: the bench kills that master's node.
    // The slot is chosen so that the node is the Raft leader, or is not, as this run asks.
    const leader = (await status(0)).leader as string;
    const clusterNodes = await redis(members[0].ip, ['CLUSTER', 'NODES']);
    let tag = '';
    let owner = '';
    for (let k = 0; k < 64; k++) {
      tag = `{bench${k}}`;
      owner = ownerOf(clusterNodes, Number(await redis(members[0].ip, ['CLUSTER', 'KEYSLOT', tag])));
      if ((members.find((m) => m.ip === owner)!.node === leader) === (victimRole === 'leader')) break;
    }
    const piped = await redis(owner, ['--pipe'], Array.from({ length: KEYS }, (_, i) => `SET ${tag}k${i} v${i}\n`).join(''));
    if (!piped.endsWith(`errors: 0, replies: ${KEYS}`)) throw new Error(`redis-cli --pipe to ${owner}: ${piped}`);
    // On disk before the crash, not after a pause: with appendfsync always, the next write fsyncs the whole AOF, earlier writes too.
    // (The SET rewrites a key just written, with the same value.)
    const policy = (await redis(owner, ['CONFIG', 'GET', 'appendfsync'])).split('\n')[1];
    for (const args of [
      ['CONFIG', 'SET', 'appendfsync', 'always'],
      ['SET', `${tag}k0`, 'v0'],
      ['CONFIG', 'SET', 'appendfsync', policy],
    ]) {
      const said = await redis(owner, args);
      if (said !== 'OK') throw new Error(`redis-cli ${args.join(' ')}: ${said}`);
    }

    const victimMember = members.find((m) => m.ip === owner)!;
    const victim = ids.indexOf(victimMember.node);
    const moving = members.filter((m) => m.node === victimMember.node);
    const victim_was_leader = leader === victimMember.node;
    const t1 = Date.now();
    await bed.crash(victim);
    // Serving again: every member of the killed node runs elsewhere, answers at its address in a healthy cluster, and the keys are all there.
    await until(
      async () => {
        const now = (await service((victim + 1) % 3)).members;
        for (const was of moving) {
          const m = now.find((x) => x.name === was.name)!;
          if (m.node === was.node || m.state !== 'running') return false;
          if (!(await redis(m.ip, ['CLUSTER', 'INFO'])).includes('cluster_state:ok')) return false;
        }
        return (await redis(owner, ['-c', 'DBSIZE'])) !== '' && (await redis(owner, ['-c', 'GET', `${tag}k${KEYS - 1}`])) === `v${KEYS - 1}`;
      },
      120_000,
      'the moved members serving with their keys',
    );
    const failover_ms = Date.now() - t1;
    return { create_ms, failover_ms, victim_was_leader };
  } finally {
    await bed.destroy();
  }
}

interface Member {
  name: string;
  node: string;
  ip: string;
  dns: string;
  state: string;
}

/** The address of the master that serves `slot`, from CLUSTER NODES. */
function ownerOf(nodes: string, slot: number): string {
  for (const line of nodes.split('\n')) {
    const f = line.trim().split(' ');
    if (!f[2]?.includes('master')) continue;
    for (const range of f.slice(8)) {
      const [lo, hi] = range.split('-').map(Number);
      if (slot >= lo && slot <= (hi ?? lo)) return f[1].split(':')[0];
    }
  }
  throw new Error(`no master serves slot ${slot}`);
}

/** The median (the mean of the middle two of an even count); undefined for no runs. */
function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : Math.round((s[mid - 1] + s[mid]) / 2);
}

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .option('runs', { type: 'number', default: 4, describe: 'runs; they take turns killing a follower node and the leader node' })
    .option('lease-ttl', { type: 'number', default: 5, describe: "the nodes' --lease-ttl: failover waits for it to expire" })
    .option('json', { type: 'boolean', default: false })
    .strict()
    .parseAsync();
  const runs: Run[] = [];
  for (let i = 0; i < argv.runs; i++) {
    runs.push(await oneRun(argv.leaseTtl, i % 2 === 0 ? 'follower' : 'leader'));
    const r = runs.at(-1)!;
    if (!argv.json)
      process.stderr.write(
        `run ${i + 1}/${argv.runs}: create ${r.create_ms} ms, failover ${r.failover_ms} ms${r.victim_was_leader ? ' (the dead node was the Raft leader)' : ''}\n`,
      );
  }
  const result = {
    lease_ttl_s: argv.leaseTtl,
    runs,
    median: { create_ms: median(runs.map((r) => r.create_ms)), failover_ms: median(runs.map((r) => r.failover_ms)) },
    // A dead leader costs an election, and the new leader gives every lease a whole TTL again.
    median_failover_ms_by_victim: {
      follower: median(runs.filter((r) => !r.victim_was_leader).map((r) => r.failover_ms)) ?? null,
      leader: median(runs.filter((r) => r.victim_was_leader).map((r) => r.failover_ms)) ?? null,
    },
    targets: TARGETS,
  };
  if (argv.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  const row = (k: 'create_ms' | 'failover_ms') =>
    `${k.padEnd(12)}${String(result.median[k]).padStart(8)}   ${runs
      .map((r) => r[k])
      .join(', ')
      .padEnd(24)}${String(TARGETS[k]).padStart(8)}`;
  const byVictim = result.median_failover_ms_by_victim;
  process.stdout.write(
    `lease TTL ${argv.leaseTtl} s, ${argv.runs} runs\n${'what'.padEnd(12)}${'median'.padStart(8)}   ${'runs'.padEnd(24)}${'target'.padStart(8)}\n${row('create_ms')}\n${row('failover_ms')}\n` +
      `failover median when the dead node was a follower: ${byVictim.follower ?? '-'} ms, the leader: ${byVictim.leader ?? '-'} ms\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`bench:failover: ${(err as Error).message}\n`);
  process.exit(1);
});
