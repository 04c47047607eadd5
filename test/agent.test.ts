// The agent on the test bed: three nodes, each in its own network namespace
// with its own dockerd, loop volumes on shared storage, static IPs on the
// nodes' interfaces, and a client namespace. The test plays the catalog: it
// writes members' assignments into the controldb and watches what the agents
// make of them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import dns from 'node:dns';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { TestBed } from './bed/bed.ts';
import { BUSYBOX_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE, docker, runningContainers } from './bed/docker.ts';
import { REPO } from './helpers/proc.ts';
import { pollUntil } from './helpers/wait.ts';
import { DEFAULT_LEASE_TTL } from '../src/config.ts';
import { renewEveryMs } from '../src/agent/lease.ts';

const execFileAsync = promisify(execFile);

// Nodes 1 and 2 run at the daemon's default lease TTL: the fencing tests cut and freeze them. Node 0, whose agent the
// restart test restarts, gets a longer one: started from source (tsx), a daemon takes 1.2 to 1.9 s to confirm its lease
// again, more than the 1.75 s that the default TTL's fence leaves after the last keepalive. (An operator who restarts
// daemons on slow hosts raises --lease-ttl the same way.)
const LEASE_TTL = DEFAULT_LEASE_TTL;
const RESTART_LEASE_TTL = 6;
const CONTAINER = 'firecampd-web-web-0';
const IP = '10.77.0.50';
const NAME = 'web-0.web.fc.test';

function member(node: string, epoch: number) {
  return {
    service: 'web',
    name: 'web-0',
    node,
    epoch,
    image: BUSYBOX_IMAGE,
    // "first" is written once, by whichever node first runs the member: it must follow the member.
    // As PID 1 the shell must exit on SIGTERM itself, or every stop would wait out Docker's grace period.
    command: [
      'sh',
      '-c',
      "cp /data/epoch /data/www/epoch; [ -f /data/www/first ] || cp /data/epoch /data/www/first; trap 'exit 0' TERM; httpd -f -p 8080 -h /data/www & wait",
    ],
    volume: { id: 'web-0', sizeMiB: 16, mountPath: '/data' },
    ip: IP,
    dnsName: NAME,
    port: 8080,
    configFiles: [
      { path: 'epoch', content: String(epoch) },
      { path: 'www/.keep', content: '' },
    ],
  };
}

/** Polls every dockerd every 100 ms and remembers whenever the member ran on two nodes at once. */
class TwiceWatcher {
  readonly seen: { at: number; nodes: number[] }[] = [];
  private timer: NodeJS.Timeout;
  constructor(
    private readonly bed: TestBed,
    private readonly container = CONTAINER,
  ) {
    this.timer = setInterval(() => this.poll(), 100);
  }
  poll(): void {
    const nodes = this.bed.nodes.flatMap((n, i) => (n.docker && runningContainers(n.docker).includes(this.container) ? [i] : []));
    this.seen.push({ at: Date.now(), nodes });
  }
  twice(): { at: number; nodes: number[] }[] {
    return this.seen.filter((s) => s.nodes.length > 1);
  }
  /** When the member was first seen running on node i after `since`. */
  firstOn(i: number, since: number): number | undefined {
    return this.seen.find((s) => s.at >= since && s.nodes.includes(i))?.at;
  }
  lastOn(i: number): number | undefined {
    return [...this.seen].reverse().find((s) => s.nodes.includes(i))?.at;
  }
  stop(): void {
    clearInterval(this.timer);
  }
}

describe('agent', { timeout: 300_000 }, () => {
  let bed: TestBed;
  const ids: string[] = [];
  const nodeArgs = (i: number) => [
    '--volumes',
    `loop:${bed.shared}`,
    '--static-ips',
    'local:eth0',
    '--dns-domain',
    'fc.test',
    ...(i === 0 ? ['--lease-ttl', String(RESTART_LEASE_TTL)] : []),
  ];

  const waitFor = async (cond: () => boolean | Promise<boolean>, ms: number, what: string) => {
    const deadline = Date.now() + ms;
    while (!(await Promise.resolve(cond()).catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${bed.logs(15)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** Write an assignment through any node that answers (during an election, or with a node cut off, some do not). */
  const putMember = async (spec: { service: string; name: string; node: string; stopped?: boolean }) => {
    for (let attempt = 0; attempt < 50; attempt++) {
      for (let i = 0; i < bed.nodes.length; i++) {
        const r = await bed.api(i, 'POST', '/v1/kv/put', { key: `/members/${spec.service}/${spec.name}`, value: JSON.stringify(spec) }).catch(() => null);
        if (r?.status === 200) return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`could not write the assignment of ${spec.name}`);
  };

  /** What the member serves on its static IP, asked from the client namespace (by a node process: the host's static busybox wget crashes). */
  const fetchFromClient = async (file: string): Promise<string | undefined> => {
    const script = `fetch(process.argv[1],{signal:AbortSignal.timeout(1000)}).then(async r=>{if(!r.ok)process.exit(1);process.stdout.write(await r.text())}).catch(()=>process.exit(1))`;
    try {
      const { stdout } = await execFileAsync(
        'nsenter',
        [`--net=/var/run/netns/${bed.client!.ns}`, process.execPath, '-e', script, `http://${IP}:8080/${file}`],
        { encoding: 'utf8' },
      );
      return stdout.trim();
    } catch {
      return undefined;
    }
  };

  const resolveOn = async (i: number): Promise<string[]> => {
    const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
    r.setServers([`${bed.nodes[i].ip}:53`]);
    return r.resolve4(NAME);
  };

  before(async () => {
    bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true });
    for (let i = 0; i < 3; i++) {
      await bed.start(i, nodeArgs(i));
    }
    ids.push(...(await bed.nodeIds()));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('runs a member on its node: container up, volume mounted, static IP answering, DNS name resolving on every node', async () => {
    await putMember(member(ids[0], 1));
    await waitFor(async () => (await fetchFromClient('epoch')) === '1', 30_000, 'the member to answer on its IP from the client namespace');
    // Read once: the member answering means its container runs and its volume is mounted (it serves a file from it).
    assert.deepEqual(runningContainers(bed.nodes[0].docker!), [CONTAINER]);
    assert.deepEqual([...runningContainers(bed.nodes[1].docker!), ...runningContainers(bed.nodes[2].docker!)], []);
    const mounts = fs.readFileSync('/proc/self/mounts', 'utf8');
    assert.ok(mounts.includes(`${bed.nodes[0].dataDir}/mnt/web-0 ext4`), 'the loop volume is mounted on node 0');
    const labels = JSON.parse(docker(bed.nodes[0].docker!, ['inspect', '--format', '{{json .Config.Labels}}', CONTAINER]));
    assert.equal(labels['firecampd.epoch'], '1');
    assert.equal(labels['firecampd.member'], 'web-0');
    // Members share the host's hostname (host networking): their /etc/hosts names it, with the node's address, as a host's own
    // file would; left to a resolver that does not answer, a JVM's lookup of it (RMI's, on each nodetool call) takes 10 s.
    const hosts = docker(bed.nodes[0].docker!, ['exec', CONTAINER, 'cat', '/etc/hosts']);
    assert.ok(hosts.split('\n').includes(`${bed.nodes[0].ip}\t${os.hostname()}`), `the member's /etc/hosts names the host:\n${hosts}`);
    for (let i = 0; i < 3; i++) await waitFor(async () => (await resolveOn(i)).join() === IP, 10_000, `DNS on node ${i}`);
    // The agent reports "running" only after the container started: the member may answer, and its name resolve, before the report is in.
    const status = await pollUntil(
      async () => (await bed.api(1, 'POST', '/v1/kv/range', { key: '/status/web/web-0' })).json.kvs[0]?.value as string | undefined,
      (v) => v !== undefined && (JSON.parse(v) as { state: string }).state === 'running',
      { ms: 20_000, what: "web-0's status to say running", context: () => bed.logs(15) },
    );
    assert.equal((JSON.parse(status!) as { state: string }).state, 'running');
  });

  it('moves a member to another node: stopped on the old node first, same data, IP and name on the new one', async (t) => {
    const watcher = new TwiceWatcher(bed);
    try {
      const started = Date.now();
      await putMember(member(ids[1], 2));
      await waitFor(async () => (await fetchFromClient('epoch')) === '2', 30_000, 'the moved member to answer on its IP');
      const moved = Date.now() - started;
      watcher.poll();
      t.diagnostic(`move from node 0 to node 1: ${moved} ms until the member answered on its IP again`);
      // Read once, as below: the container writes "first" before its httpd starts, and the old node stops before the new one starts.
      assert.equal(await fetchFromClient('first'), '1', 'the data written on node 0 is there on node 1');
      assert.deepEqual(runningContainers(bed.nodes[1].docker!), [CONTAINER]);
      assert.deepEqual(runningContainers(bed.nodes[0].docker!), []);
      assert.deepEqual(watcher.twice(), [], 'never running on two nodes');
      // Read once: the record has named IP since the first test (a move upserts the same address; a stop does not remove it).
      for (let i = 0; i < 3; i++) assert.deepEqual(await resolveOn(i), [IP]);
    } finally {
      watcher.stop();
    }
  });

  it('fences a partitioned node: it stops its members within its lease TTL, and the new node starts them only after the lease expired', async (t) => {
    const watcher = new TwiceWatcher(bed);
    try {
      const cutAt = Date.now();
      bed.partition([1], [0, 2]);
      // An eager catalog: the member is reassigned at once. The fencing must still hold.
      await putMember(member(ids[2], 3));
      await waitFor(async () => (await fetchFromClient('epoch')) === '3', 40_000, 'the member to come back on node 2');
      watcher.poll();
      const stoppedOn1 = watcher.lastOn(1)!;
      const startedOn2 = watcher.firstOn(2, cutAt)!;
      t.diagnostic(`partition: node 1 stopped its member ${stoppedOn1 - cutAt} ms after the cut; node 2 started it ${startedOn2 - cutAt} ms after`);
      assert.ok(stoppedOn1 - cutAt <= LEASE_TTL * 1000, `node 1 stopped within the lease TTL (${stoppedOn1 - cutAt} ms)`);
      // The lease expires a TTL after the last keepalive the leader got, which came before the cut (one goes every
      // renewEveryMs, later when the node is busy).
      assert.ok(startedOn2 - cutAt >= LEASE_TTL * 1000 - renewEveryMs(LEASE_TTL) - 200, `node 2 waited for the lease to expire (${startedOn2 - cutAt} ms)`);
      assert.deepEqual(watcher.twice(), [], 'never running on two nodes');
      assert.equal(await fetchFromClient('first'), '1');
    } finally {
      bed.heal();
      watcher.stop();
    }
    await waitFor(() => runningContainers(bed.nodes[1].docker!).length === 0, 10_000, 'node 1 to stay clean after healing');
  });

  it('fences a frozen daemon (SIGSTOP) through its watchdog, and the thawed node does not start the member again', async (t) => {
    const watcher = new TwiceWatcher(bed);
    try {
      const frozenAt = Date.now();
      bed.pause(2);
      await putMember(member(ids[0], 4));
      await waitFor(async () => (await fetchFromClient('epoch')) === '4', 40_000, 'the member to come back on node 0');
      watcher.poll();
      const stoppedOn2 = watcher.lastOn(2)!;
      t.diagnostic(
        `SIGSTOP: the watchdog stopped node 2's member ${stoppedOn2 - frozenAt} ms after the freeze; node 0 started it ${watcher.firstOn(0, frozenAt)! - frozenAt} ms after`,
      );
      assert.ok(stoppedOn2 - frozenAt <= LEASE_TTL * 1000, `stopped within the lease TTL (${stoppedOn2 - frozenAt} ms)`);
      // Read once on purpose: the watchdog lets go before the lease can expire, node 0 mounts only after it did; still mounted now is the bug.
      assert.ok(!fs.readFileSync('/proc/self/mounts', 'utf8').includes(`${bed.nodes[2].dataDir}/mnt/`), "the frozen node's watchdog let go of the volume");
      bed.resume(2);
      // The point of the test: a whole lease TTL in which the thawed node (caught up and reconciling within seconds) must start nothing.
      await new Promise((r) => setTimeout(r, LEASE_TTL * 1000));
      assert.deepEqual(runningContainers(bed.nodes[2].docker!), [], 'the thawed node runs nothing');
      assert.deepEqual(watcher.twice(), [], 'never running on two nodes');
      assert.equal(await fetchFromClient('first'), '1');
    } finally {
      bed.resume(2);
      watcher.stop();
    }
  });

  it('restarts an agent without restarting the members it runs', async () => {
    const before = docker(bed.nodes[0].docker!, ['inspect', '--format', '{{.Id}} {{.State.StartedAt}}', CONTAINER]);
    await bed.kill(0);
    await bed.start(0, nodeArgs(0));
    // The point of the test: past the watchdog's deadline and a whole TTL, the member must still be the same container.
    await new Promise((r) => setTimeout(r, RESTART_LEASE_TTL * 1500));
    assert.equal(
      docker(bed.nodes[0].docker!, ['inspect', '--format', '{{.Id}} {{.State.StartedAt}}', CONTAINER]),
      before,
      `the same container, never restarted; node 0 said:\n${bed.nodes[0].logs.filter((l) => /lease|fence|watchdog|kept|removed|started/.test(l)).join('\n')}`,
    );
    assert.equal(await fetchFromClient('epoch'), '4');
  });

  /** A member that only sleeps, on node i, under service `service`. */
  const sleeper = (service: string, i: number, epoch = 1) => ({
    service,
    name: `${service}-${i}`,
    node: ids[i],
    epoch,
    image: BUSYBOX_IMAGE,
    command: ['sh', '-c', "trap 'exit 0' TERM; sleep 600 & wait"],
  });
  /** The container's id and start time; throws while it does not exist. */
  const startedAt = (i: number, container: string) =>
    docker(bed.nodes[i].docker!, ['inspect', '--format', '{{.Id}} {{.State.StartedAt}} {{.State.Running}}', container]);
  const isRunning = (i: number, container: string) => {
    try {
      return startedAt(i, container).endsWith(' true');
    } catch {
      return false; // not made yet
    }
  };
  const fencedSince = (i: number, since: number) =>
    bed.nodes[i].logs.filter((l) => l.includes('(fenced)') && (JSON.parse(l) as { time: number }).time >= since).map((l) => `node ${i}: ${l}`);

  it('keeps the members of a daemon frozen for less than half its lease TTL (SIGSTOP, then SIGCONT)', async (t) => {
    await putMember(sleeper('slow', 1));
    await waitFor(() => isRunning(1, 'firecampd-slow-slow-1'), 20_000, 'slow-1 to run on node 1');
    const before = startedAt(1, 'firecampd-slow-slow-1');
    const frozenAt = Date.now();
    bed.pause(1);
    try {
      await new Promise((r) => setTimeout(r, (LEASE_TTL * 1000) / 2 - 100));
    } finally {
      bed.resume(1);
    }
    t.diagnostic(`node 1 frozen for ${Date.now() - frozenAt} ms at a lease TTL of ${LEASE_TTL} s`);
    // The point of the test: a whole TTL more, in which a fence from the freeze would show.
    await new Promise((r) => setTimeout(r, LEASE_TTL * 1000));
    assert.deepEqual(fencedSince(1, frozenAt), [], 'node 1 did not fence itself');
    assert.equal(startedAt(1, 'firecampd-slow-slow-1'), before, 'the same container, never restarted');
  });

  it('under CPU load, a cut-off node stops its member before another node starts it, and the nodes that are only slow keep theirs', async (t) => {
    await putMember(sleeper('slow', 2));
    await waitFor(() => isRunning(2, 'firecampd-slow-slow-2'), 20_000, 'slow-2 to run on node 2');
    const kept = [
      [0, CONTAINER],
      [1, 'firecampd-slow-slow-1'],
    ] as const;
    const before = kept.map(([i, c]) => startedAt(i, c));
    // Twice as many busy processes as cores, each stopping itself after 30 s (and killed below if the test ends first).
    const hogs = Array.from({ length: 2 * os.cpus().length }, () =>
      execFile(process.execPath, ['-e', 'const end = Date.now() + 30000; while (Date.now() < end);']),
    );
    const watcher = new TwiceWatcher(bed, 'firecampd-slow-slow-2');
    const loadedAt = Date.now();
    try {
      // Loaded for a whole TTL before the cut: a node that is slow but connected must keep its members.
      await new Promise((r) => setTimeout(r, LEASE_TTL * 1000));
      const cutAt = Date.now();
      bed.partition([2], [0, 1]);
      await putMember({ ...sleeper('slow', 2, 2), node: ids[1] });
      await waitFor(() => watcher.firstOn(1, cutAt) !== undefined, 30_000, 'slow-2 to run on node 1');
      watcher.poll();
      const stoppedOn2 = watcher.lastOn(2)!;
      t.diagnostic(
        `under load: node 2 stopped slow-2 ${stoppedOn2 - cutAt} ms after the cut; node 1 started it ${watcher.firstOn(1, cutAt)! - cutAt} ms after`,
      );
      assert.ok(stoppedOn2 - cutAt <= LEASE_TTL * 1000, `node 2 stopped within the lease TTL (${stoppedOn2 - cutAt} ms)`);
      assert.deepEqual(watcher.twice(), [], 'never running on two nodes');
      assert.deepEqual([...fencedSince(0, loadedAt), ...fencedSince(1, loadedAt)], [], 'the connected nodes did not fence themselves');
      assert.deepEqual(
        kept.map(([i, c]) => startedAt(i, c)),
        before,
        'the connected nodes kept their members: the same containers, never restarted',
      );
    } finally {
      for (const h of hogs) h.kill('SIGKILL');
      bed.heal();
      watcher.stop();
    }
    await waitFor(() => runningContainers(bed.nodes[2].docker!).length === 0, 10_000, 'node 2 to stay clean after healing');
    for (const name of ['slow-1', 'slow-2']) assert.equal((await bed.api(0, 'POST', '/v1/kv/delete', { key: `/members/slow/${name}` })).status, 200);
    await waitFor(() => !runningContainers(bed.nodes[1].docker!).some((c) => c.startsWith('firecampd-slow-')), 20_000, 'the slow members to go');
  });

  it('pulls a member image its node lacks without holding up the other members of its node, says why it cannot start, and starts it once the image is there', async (t) => {
    // A registry that takes the connection and never answers: the pull hangs for as long as the test wants,
    // whatever this machine's DNS and network would do to a real one.
    const silent = new Set<net.Socket>();
    const registry = net.createServer((c) => silent.add(c.on('error', () => {})));
    await new Promise<void>((r) => registry.listen(0, bed.gateway, r));
    t.after(() => registry.close());
    const image = `${bed.gateway}:${(registry.address() as net.AddressInfo).port}/firecampd/not-loaded:1`;
    const sleeper = (name: string, img: string) => ({
      service: 'pull',
      name,
      node: ids[1],
      epoch: 1,
      image: img,
      command: ['sh', '-c', "trap 'exit 0' TERM; sleep 600 & wait"],
    });
    const put = async (spec: ReturnType<typeof sleeper>) =>
      assert.equal((await bed.api(1, 'POST', '/v1/kv/put', { key: `/members/pull/${spec.name}`, value: JSON.stringify(spec) })).status, 200);
    const status = async (name: string) => {
      const kv = (await bed.api(1, 'POST', '/v1/kv/range', { key: `/status/pull/${name}` })).json.kvs[0];
      return kv ? (JSON.parse(kv.value) as { state: string; message?: string }) : undefined;
    };
    // Every status pull-0 ever has, from before its assignment: nobody polling it may see it starting with no reason.
    const history: { state: string; message?: string }[] = [];
    const watching = new AbortController();
    t.after(() => watching.abort());
    const from = (await bed.api(1, 'POST', '/v1/kv/range', { key: '/status/pull/pull-0' })).json.revision as number;
    void (async () => {
      const q = new URLSearchParams({ key: '/status/pull/pull-0', from: String(from + 1) });
      for await (const line of bed.apiClient(1).stream(`/v1/watch?${q}`, watching.signal)) {
        const batch = JSON.parse(line) as { events?: { type: string; kv: { value: string } }[] };
        for (const e of batch.events ?? []) if (e.type === 'put') history.push(JSON.parse(e.kv.value) as { state: string; message?: string });
      }
    })().catch(() => {});
    await put(sleeper('pull-0', image));
    await put(sleeper('pull-1', BUSYBOX_IMAGE));
    await waitFor(() => silent.size > 0, 10_000, 'the node to start pulling');
    await waitFor(async () => (await status('pull-1'))?.state === 'running', 10_000, 'the member whose image is there to start meanwhile');
    await waitFor(() => history.length > 0, 10_000, "pull-0's first status to reach the watch");
    assert.deepEqual(
      history.map((h) => [h.state, h.message]),
      history.map(() => ['starting', `pulling image ${image}`]),
      'from its first status on, the member says that it waits for its pull',
    );
    // The registry took the connection only after the agent had written that status: one read is enough here.
    const pulling = await status('pull-0');
    assert.deepEqual([pulling?.state, pulling?.message], ['starting', `pulling image ${image}`], 'the other member is still waiting for its pull');
    // The registry hangs up: the pull fails, and the member says why.
    registry.close();
    for (const c of silent) c.destroy();
    await waitFor(async () => (await status('pull-0'))?.state === 'failed', 30_000, 'the pull to fail');
    assert.match(
      (await status('pull-0'))!.message!,
      /^image step: image 10\.77\.0\.1:\d+\/firecampd\/not-loaded:1 is not on this node's Docker engine and could not be pulled \(.+\); load it on every node/,
    );
    docker(bed.nodes[1].docker!, ['tag', BUSYBOX_IMAGE, image]);
    await waitFor(async () => (await status('pull-0'))?.state === 'running', 20_000, 'the member to start once its image is loaded');
    assert.ok(runningContainers(bed.nodes[1].docker!).includes('firecampd-pull-pull-0'));
    for (const name of ['pull-0', 'pull-1']) assert.equal((await bed.api(1, 'POST', '/v1/kv/delete', { key: `/members/pull/${name}` })).status, 200);
    await waitFor(() => !runningContainers(bed.nodes[1].docker!).some((c) => c.startsWith('firecampd-pull-')), 20_000, 'the members to go once unassigned');
  });

  it('npm run images builds the images from Debian packages into an engine, only those it lacks, and they run', async () => {
    const d = bed.nodes[2].docker!;
    // The bed imported every image; take PostgreSQL's away so that this run builds it and finds the others there.
    const pgNames = docker(d, ['image', 'inspect', '--format', '{{join .RepoTags " "}}', POSTGRES_IMAGE]).split(' ');
    docker(d, ['rmi', ...pgNames]);
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import', 'tsx', 'scripts/images.ts', '--docker-host', d.host, '--only', [BUSYBOX_IMAGE, REDIS_IMAGE, POSTGRES_IMAGE].join(','), '--json'],
      {
        encoding: 'utf8',
        cwd: REPO,
      },
    );
    const out = JSON.parse(stdout) as { docker_host: string; images: { image: string; names: string[]; id: string; imported: boolean }[] };
    assert.deepEqual(
      out.images.map((i) => [i.image, i.imported]),
      [
        [BUSYBOX_IMAGE, false],
        [REDIS_IMAGE, false],
        [POSTGRES_IMAGE, true],
      ],
    );
    assert.match(out.images[2].names.join(' '), /^postgres:15 postgres:15\.\d+$/);
    for (const i of out.images) for (const name of i.names) assert.equal(docker(d, ['image', 'inspect', '--format', '{{.Id}}', name]), i.id);
    assert.match(
      docker(d, ['run', '--rm', '--network', 'none', REDIS_IMAGE, 'sh', '-c', 'redis-server --version && id redis']),
      /^Redis server v=7\.[^]*uid=999\(redis\) gid=999\(redis\)/,
    );
    const pg = docker(d, [
      'run',
      '--rm',
      '--network',
      'none',
      '--user',
      '999:999',
      POSTGRES_IMAGE,
      'sh',
      '-c',
      'initdb --auth=trust -E UTF8 --locale=C >/dev/null 2>&1 && pg_ctl -o "-c listen_addresses=" -l /tmp/log -w start >/dev/null && psql -U postgres -Atc "select 1" && pg_basebackup --version && pg_rewind --version',
    ]);
    assert.match(pg, /^1\npg_basebackup \(PostgreSQL\) 15\.\d+.*\npg_rewind \(PostgreSQL\) 15\./);
  });

  // Last: it kills a node for good.
  it("takes a member's DNS name away when its assignment is gone, and keeps it while the member is only stopped", async () => {
    const name = 'named-2.named.fc.test';
    const resolves = async (i: number) => {
      const r = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
      r.setServers([`${bed.nodes[i].ip}:53`]);
      return (await r.resolve4(name).catch(() => [])).join();
    };
    const spec = { ...sleeper('named', 2), dnsName: name };
    await putMember(spec);
    await waitFor(() => isRunning(2, 'firecampd-named-named-2'), 20_000, 'named-2 to run on node 2');
    for (let i = 0; i < 3; i++) await waitFor(async () => (await resolves(i)) === bed.nodes[2].ip, 10_000, `node ${i} to resolve ${name}`);
    // Stopped (a service stop): the container goes, the name stays for when it runs again.
    await putMember({ ...spec, stopped: true });
    await waitFor(() => !runningContainers(bed.nodes[2].docker!).includes('firecampd-named-named-2'), 20_000, 'named-2 to stop');
    await waitFor(async () => (await bed.api(0, 'POST', '/v1/kv/range', { key: '/claims/named/named-2' })).json.kvs.length === 0, 10_000, 'its claim to go');
    for (let i = 0; i < 3; i++) assert.equal(await resolves(i), bed.nodes[2].ip, `node ${i} still resolves the stopped member's name`);
    // Running again, then gone: the agent's name step takes the record away.
    await putMember(spec);
    await waitFor(() => isRunning(2, 'firecampd-named-named-2'), 20_000, 'named-2 to run again');
    assert.equal((await bed.api(0, 'POST', '/v1/kv/delete', { key: '/members/named/named-2' })).status, 200);
    for (let i = 0; i < 3; i++) await waitFor(async () => (await resolves(i)) === '', 20_000, `node ${i} to stop resolving ${name}`);
    assert.ok(!runningContainers(bed.nodes[2].docker!).includes('firecampd-named-named-2'));
  });

  it("keeps the survivors' members running when the Raft leader's node dies: they renew their leases with the new leader in time", async (t) => {
    const leader = await pollUntil(
      async () => ids.indexOf((await bed.api(0, 'GET', '/v1/cluster/status')).json.leader as string),
      (l) => l >= 0,
      { ms: 30_000, what: 'a leader', context: () => bed.logs(10) },
    );
    const survivors = [0, 1, 2].filter((i) => i !== leader);
    const via = survivors[0];
    for (const i of survivors) await putMember(sleeper('keep', i));
    for (const i of survivors) await waitFor(() => isRunning(i, `firecampd-keep-keep-${i}`), 20_000, `keep-${i} to run on node ${i}`);
    const before = survivors.map((i) => startedAt(i, `firecampd-keep-keep-${i}`));
    const killedAt = Date.now();
    bed.die(leader);
    const next = await pollUntil(
      async () => ids.indexOf((await bed.api(via, 'GET', '/v1/cluster/status')).json.leader as string),
      (l) => survivors.includes(l),
      { ms: 30_000, what: 'a new leader among the survivors', context: () => bed.logs(10) },
    );
    t.diagnostic(`the leader's node died; node ${next} leads ${Date.now() - killedAt} ms later`);
    // The point of the test: past every survivor's fence deadline (a TTL less the fence margin after its last keepalive
    // before the kill) and a whole TTL, nothing may have stopped: a survivor that renewed too late would have killed its member.
    await new Promise((r) => setTimeout(r, LEASE_TTL * 1000));
    // Since the kill: nodes were fenced on purpose in earlier tests.
    assert.deepEqual(
      survivors.flatMap((i) => fencedSince(i, killedAt)),
      [],
      'no survivor fenced itself',
    );
    assert.deepEqual(
      survivors.map((i) => startedAt(i, `firecampd-keep-keep-${i}`)),
      before,
      'the same containers, never restarted',
    );
  });
});
