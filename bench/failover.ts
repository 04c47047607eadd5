// npm run bench:failover -- [--type redis|postgres] [--runs 4] [--lease-ttl 5] [--json]
// On the network-namespace test bed (3 nodes, a dockerd each, a client
// namespace): create a Redis cluster (3 shards × a master and a replica),
// time create→ACTIVE; write keys to one master (with the service's generated
// password, as every member requires it), kill -9 the firecampd and
// dockerd of its node, time until every member of that node answers again on
// its address, elsewhere, in a healthy cluster, with the keys readable.
// Runs take turns killing a follower node and the leader node. Medians of
// the runs, and of each kind.
//
// --type postgres: create a PostgreSQL service of 3 members (a primary and two
// streaming standbys), time create→ACTIVE; with the load client of
// test/helpers/pg-client.ts inserting through primary.pg.<domain> from the
// client namespace, kill -9 the firecampd and dockerd of the primary's node
// and time until the client's first acknowledged insert after the kill. The
// primary goes where placement puts its first member; to make that the leader
// node or a follower node as the run asks, the bench first pins a one-member
// Redis service (a spacer) on each of the two other nodes (node labels and
// --require-label), so the wanted node is the least loaded, then deletes the
// spacers once PostgreSQL is ACTIVE, before the load starts.
import { execFile, spawn } from 'node:child_process';
import dns from 'node:dns';
import path from 'node:path';
import { promisify } from 'node:util';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { TestBed } from '../test/bed/bed.ts';
import { REPO } from '../test/helpers/proc.ts';

const execFileAsync = promisify(execFile);
const KEYS = 1000;
const TARGETS = { create_ms: 15_000, failover_ms: 10_000 };
const TYPES = ['redis', 'postgres'] as const;
const PG_CLIENT = path.join(REPO, 'test', 'helpers', 'pg-client.ts');
/** The node label that pins a spacer to one node (postgres runs). */
const NODE_LABEL = 'bench-node';

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

/** A fresh bed of 3 nodes (a dockerd each) and a client namespace, every agent holding its lease. */
async function startBed(leaseTtl: number, extra: (i: number, bed: TestBed) => string[] = () => []): Promise<TestBed> {
  const bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true });
  try {
    for (let i = 0; i < 3; i++) {
      await bed.start(i, [...bed.serviceNodeArgs(leaseTtl), ...extra(i, bed)]);
    }
    // Every agent holds its lease before the clock starts: placement needs live nodes.
    await until(async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).json.kvs.length === 3, 30_000, 'the agents');
    return bed;
  } catch (err) {
    await bed.destroy();
    throw err;
  }
}

async function oneRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  const bed = await startBed(leaseTtl);
  try {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const ids = await bed.nodeIds();

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

/**
 * PostgreSQL: a 3-member service, create→ACTIVE; then, with the load client
 * inserting, the primary's node dies, and failover_ms is the time from the
 * kill to the client's first acknowledged insert after it.
 */
async function postgresRun(leaseTtl: number, victimRole: 'leader' | 'follower'): Promise<Run> {
  // Each node carries a label naming it, for the spacers' --require-label.
  const bed = await startBed(leaseTtl, (i, b) => ['--labels', `${NODE_LABEL}=${b.nodes[i].ns}`]);
  let load: LoadClient | undefined;
  try {
    const status = async (i: number) => (await bed.api(i, 'GET', '/v1/cluster/status')).json;
    const service = async (name: string, i = 0) => (await bed.api(i, 'GET', `/v1/service?name=${name}`)).json as PgView;
    const ids = await bed.nodeIds();

    // Where the primary should run: the leader node, or a follower node. A spacer on each other node makes it the least loaded one,
    // so that placement puts the first member (the primary) there; the other two members go to the nodes without a member of theirs.
    const leader = (await status(0)).leader as string;
    const wanted = victimRole === 'leader' ? leader : ids.find((id) => id !== leader)!;
    const spacers = ids.flatMap((id, i) => (id === wanted ? [] : [{ name: `spacer-${bed.nodes[i].ns}`, ns: bed.nodes[i].ns }]));
    for (const sp of spacers) {
      const r = await bed.api(0, 'POST', '/v1/services', {
        type: 'redis',
        name: sp.name,
        replicas: 1,
        volumeSizeMiB: 64,
        placement: { labels: { [NODE_LABEL]: sp.ns } },
      });
      if (r.status !== 200) throw new Error(`create ${sp.name}: ${JSON.stringify(r.json)}`);
    }
    for (const sp of spacers) await until(async () => (await service(sp.name)).status === 'ACTIVE', 60_000, `${sp.name} ACTIVE`);

    // What `firecampd service create --type postgres --name pg --replicas 3 --volume-size 256` sends.
    const t0 = Date.now();
    const created = await bed.api(0, 'POST', '/v1/services', { type: 'postgres', name: 'pg', replicas: 3, volumeSizeMiB: 256 });
    if (created.status !== 200) throw new Error(`create: ${JSON.stringify(created.json)}`);
    await until(async () => (await service('pg')).status === 'ACTIVE', 120_000, 'pg ACTIVE');
    const create_ms = Date.now() - t0;

    // The spacers go before the load starts: the dead node then runs nothing but its PostgreSQL member.
    for (const sp of spacers) {
      const r = await bed.api(0, 'POST', '/v1/services/delete', { name: sp.name });
      if (r.status !== 200) throw new Error(`delete ${sp.name}: ${JSON.stringify(r.json)}`);
    }
    for (const sp of spacers) await until(async () => (await bed.api(0, 'GET', `/v1/service?name=${sp.name}`)).status === 404, 60_000, `${sp.name} deleted`);

    // The superuser's password: what `firecampd service credentials pg` shows for user postgres.
    const creds = await bed.api(0, 'GET', '/v1/service/credentials?name=pg');
    const password = (creds.json as { credentials?: { user?: string; value: string }[] }).credentials?.find((c) => c.user === 'postgres')?.value;
    if (creds.status !== 200 || !password)
      throw new Error(`credentials: ${creds.status} ${creds.status === 200 ? 'no password of user postgres' : JSON.stringify(creds.json)}`);

    const view = await service('pg');
    const primary = view.members.find((m) => m.name === view.state?.primary);
    if (!primary) throw new Error(`no primary member in the service view: state ${JSON.stringify(view.state)}`);
    const victim = ids.indexOf(primary.node);
    if (victim < 0) throw new Error(`the primary ${primary.name} is on ${primary.node}, not a node of the bed`);
    if (primary.node !== wanted)
      process.stderr.write(`bench:failover: the primary ${primary.name} was placed on ${bed.nodes[victim].ns}, not on the ${victimRole} node asked for\n`);
    // The client asks a node that stays alive for the primary's address.
    const survivor = [0, 1, 2].find((i) => i !== victim)!;
    load = startLoad(bed, `${bed.nodes[survivor].ip}:53`, password);
    await load.ready(60_000);

    const victim_was_leader = (await status(survivor)).leader === primary.node;
    const t1 = Date.now();
    await bed.crash(victim);
    // Serving again: the first insert acknowledged after the kill, following an outage (the client reports one of over a second).
    const resumedAt = await load.resumedAfter(t1, 120_000);
    return { create_ms, failover_ms: resumedAt - t1, victim_was_leader };
  } finally {
    await load?.stop();
    await bed.destroy();
  }
}

interface PgView {
  status: string;
  state?: { primary?: string };
  members: Member[];
}

interface LoadClient {
  /** Resolves after the client's first acknowledged insert. */
  ready(ms: number): Promise<void>;
  /** The epoch ms of the first insert acknowledged after an outage that ended after `since`. */
  resumedAfter(since: number, ms: number): Promise<number>;
  stop(): Promise<void>;
}

/** test/helpers/pg-client.ts in load mode, in the client namespace, inserting through primary.pg.fc.test until stopped. */
function startLoad(bed: TestBed, dnsServer: string, password: string): LoadClient {
  const args = [`--net=/var/run/netns/${bed.client!.ns}`, process.execPath, '--import', 'tsx', PG_CLIENT];
  args.push('--dns', dnsServer, '--host', 'primary.pg.fc.test', '--user', 'postgres', '--password', password, 'load');
  const proc = spawn('nsenter', args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  proc.stderr.on('data', (d) => (err = (err + String(d)).slice(-2000)));
  proc.stdin.on('error', () => {});
  let exited = false;
  const closed = new Promise<void>((r) => proc.once('close', () => r())).then(() => void (exited = true));
  const lines = () =>
    out
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  const gone = () => new Error(`the load client exited: ${err.trim() || out.trim().split('\n').at(-1) || 'without a word'}`);
  return {
    ready: async (ms) => {
      const ready = () => lines().some((l) => l.ready === true);
      await until(() => Promise.resolve(ready() || exited), ms, 'the load client to insert');
      if (!ready()) throw gone();
    },
    resumedAfter: async (since, ms) => {
      let at: number | undefined;
      await until(
        () => {
          const l = lines().find((x) => typeof x.resumedAt === 'number' && x.resumedAt > since);
          at = l?.resumedAt as number | undefined;
          return Promise.resolve(at !== undefined || exited);
        },
        ms,
        'an insert acknowledged after the kill',
      );
      if (at === undefined) throw gone();
      return at;
    },
    // End of stdin stops it; one in-flight query may take its timeouts (2 s to connect, 5 s per query) first.
    stop: async () => {
      proc.stdin.end();
      const timer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
      await closed;
      clearTimeout(timer);
    },
  };
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
    .option('type', { choices: TYPES, default: 'redis', describe: "the service: a 3×2 Redis cluster, or PostgreSQL's primary and 2 standbys" })
    .option('runs', { type: 'number', default: 4, describe: 'runs; they take turns killing a follower node and the leader node' })
    .option('lease-ttl', { type: 'number', default: 5, describe: "the nodes' --lease-ttl: failover waits for it to expire" })
    .option('json', { type: 'boolean', default: false })
    .strict()
    .parseAsync();
  const runs: Run[] = [];
  for (let i = 0; i < argv.runs; i++) {
    runs.push(await (argv.type === 'postgres' ? postgresRun : oneRun)(argv.leaseTtl, i % 2 === 0 ? 'follower' : 'leader'));
    const r = runs.at(-1)!;
    if (!argv.json)
      process.stderr.write(
        `run ${i + 1}/${argv.runs}: create ${r.create_ms} ms, failover ${r.failover_ms} ms${r.victim_was_leader ? ' (the dead node was the Raft leader)' : ''}\n`,
      );
  }
  const result = {
    type: argv.type,
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
    `${argv.type === 'postgres' ? 'PostgreSQL, 3 members (failover: kill → first acknowledged insert)' : 'Redis, 3×2 cluster'}, lease TTL ${argv.leaseTtl} s, ${argv.runs} runs\n${'what'.padEnd(12)}${'median'.padStart(8)}   ${'runs'.padEnd(24)}${'target'.padStart(8)}\n${row('create_ms')}\n${row('failover_ms')}\n` +
      `failover median when the dead node was a follower: ${byVictim.follower ?? '-'} ms, the leader: ${byVictim.leader ?? '-'} ms\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`bench:failover: ${(err as Error).message}\n`);
  process.exit(1);
});
