// The multi-host test bed: firecampd nodes in network namespaces, with kills,
// pauses and partitions, and nothing left behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { TestBed } from './bed/bed.ts';
import { PREFIX } from './bed/netns.ts';
import { pollUntil } from './helpers/wait.ts';

const canConnect = (bed: TestBed, fromNs: string, ip: string) => {
  try {
    bed.execIn(fromNs, 'timeout', ['2', 'bash', '-c', `echo > /dev/tcp/${ip}/27040`]);
    return true;
  } catch {
    return false;
  }
};

describe('test bed', () => {
  let bed: TestBed | null = null;
  after(async () => {
    await bed?.destroy();
  });

  it('runs a 3-node cluster in namespaces that survives kill -9, pauses and a partition', async () => {
    bed = await TestBed.create({ nodes: 3, clientNamespace: true });
    await bed.startAll();
    const b = bed;
    const waitFor = async (cond: () => Promise<boolean>, what: string, ms = 20_000) => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (await cond().catch(() => false)) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`timed out waiting for ${what}\n${b.logs()}`);
    };
    /**
     * Node i's health once it is ok: it serves, and its agent runs, which comes after the node started (the agent
     * needs an answer from Docker and a node lease). These nodes have no dockerd of their own: their agents use the
     * machine's Docker engine (DOCKER_HOST, or unix:///var/run/docker.sock), which this test needs.
     */
    const healthy = (i: number) =>
      pollUntil(
        async () => (await b.api(i, 'GET', '/v1/health')).json as { status: string; node_id: string; problems: string[] },
        (h) => h.status === 'ok',
        {
          ms: 30_000,
          what: `node ${i} at ${b.nodes[i].addr} to say it is ok (its agent running against ${process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock'})`,
          every: 200,
          context: () => b.logs(10),
        },
      );
    await waitFor(
      async () => (await b.api(0, 'GET', '/v1/cluster/status')).json.members.filter((m: { role: string }) => m.role === 'voter').length === 3,
      '3 voters',
    );
    for (let i = 0; i < 3; i++) {
      const h = await healthy(i);
      assert.equal(h.status, 'ok', `node ${i} answers at ${b.nodes[i].addr}`);
      assert.deepEqual(h.problems, []);
    }
    assert.ok(canConnect(b, b.client!.ns, b.nodes[1].ip), 'the client namespace reaches the nodes');

    // kill -9 and restart: the node comes back as itself.
    const id = (await b.api(2, 'GET', '/v1/health')).json.node_id;
    await b.kill(2);
    await assert.rejects(b.api(2, 'GET', '/v1/health', undefined, 1000));
    await b.start(2);
    assert.equal((await b.api(2, 'GET', '/v1/health')).json.node_id, id);

    // SIGSTOP: it stops answering; SIGCONT: it answers again.
    b.pause(1);
    await assert.rejects(b.api(1, 'GET', '/v1/health', undefined, 1000));
    b.resume(1);
    assert.equal((await healthy(1)).status, 'ok');

    // Partition the leader from the others: the majority elects a new leader and takes writes.
    // (If node 1 led when it was paused, an election may still be under way: wait for its outcome.)
    let leader = -1;
    await waitFor(async () => {
      const m = (await b.api(0, 'GET', '/v1/cluster/status')).json.members.find((x: { leader: boolean }) => x.leader);
      leader = b.nodes.findIndex((n) => n.ns === m?.name); // members come sorted by id, not in the bed's order
      return leader >= 0;
    }, 'a leader');
    const others = [0, 1, 2].filter((i) => i !== leader);
    b.partition([leader], others);
    assert.ok(!canConnect(b, b.nodes[others[0]].ns, b.nodes[leader].ip), 'partitioned nodes cannot reach each other');
    assert.ok(canConnect(b, b.nodes[others[0]].ns, b.nodes[others[1]].ip), 'the majority still talks');
    await waitFor(async () => (await b.api(others[0], 'POST', '/v1/kv/put', { key: 'p', value: 'majority' })).status === 200, 'a write on the majority side');
    const minority = await b.api(leader, 'POST', '/v1/kv/range', { key: 'p' }, 10_000).catch(() => ({ status: 0 }));
    assert.notEqual(minority.status, 200, 'the cut-off node cannot serve a linearizable read');
    b.heal();
    assert.ok(canConnect(b, b.nodes[others[0]].ns, b.nodes[leader].ip), 'healed');
    await waitFor(async () => (await b.api(leader, 'POST', '/v1/kv/range', { key: 'p' })).json.kvs[0]?.value === 'majority', 'the old leader to catch up');

    // One way: traffic from the first node to the second is dropped, the reverse path's rules are untouched.
    b.partition([0], [1], { oneWay: true });
    assert.ok(!canConnect(b, b.nodes[0].ns, b.nodes[1].ip));
    assert.doesNotMatch(b.execIn(b.nodes[1].ns, 'iptables', ['-S', 'OUTPUT']), /DROP/);
    b.heal();
  });

  it('leaves no namespace, link or process behind', async () => {
    const pids = bed!.nodes.map((n) => n.proc?.pid).filter((p): p is number => p !== undefined);
    await bed!.destroy();
    bed = null;
    assert.doesNotMatch(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`^${PREFIX}`, 'm'));
    assert.doesNotMatch(execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }), new RegExp(`: ${PREFIX}`));
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), `process ${pid} is gone`);
  });
});
