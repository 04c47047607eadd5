// Placement: where the catalog puts a member, and how it explains a member
// that fits nowhere.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { place, type NodeInfo, type PlacedMember } from '../src/catalog/placement.ts';

const node = (id: string, zone: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  id,
  name: id,
  zone,
  labels: {},
  capacity: { cpus: 2, memoryMiB: 4096 },
  ...extra,
});
const ip = (i: number) => `10.0.0.${i}`;

/** Place members 0..n-1 of a cluster-mode service one after another, as the catalog does. */
function placeAll(nodes: NodeInfo[], n: number, groupOf: (i: number) => number): PlacedMember[] {
  const placed: PlacedMember[] = [];
  for (let i = 0; i < n; i++) {
    const want = { name: `c-${i}`, service: 'c', group: groupOf(i), ip: ip(i), port: 6379 };
    const r = place(want, nodes, placed);
    assert.ok('node' in r, `c-${i}: ${'why' in r ? r.why : ''}`);
    placed.push({ ...want, node: r.node });
  }
  return placed;
}

describe('placement', () => {
  it('keeps the members of a shard on different nodes and zones, and spreads the service evenly', () => {
    const nodes = [node('a', 'z1'), node('b', 'z2'), node('c', 'z3')];
    const placed = placeAll(nodes, 6, (i) => Math.floor(i / 2)); // 3 shards × (master + replica)
    for (let s = 0; s < 3; s++) assert.notEqual(placed[2 * s].node, placed[2 * s + 1].node, `shard ${s} on one node`);
    for (const n of nodes) assert.equal(placed.filter((m) => m.node === n.id).length, 2, `two members on ${n.id}`);
  });

  it('puts a replica in another zone than its master when nodes share zones', () => {
    const nodes = [node('a', 'z1'), node('b', 'z1'), node('c', 'z2'), node('d', 'z2')];
    const placed = placeAll(nodes, 4, (i) => Math.floor(i / 2));
    const zone = (id: string) => nodes.find((n) => n.id === id)!.zone;
    assert.notEqual(zone(placed[0].node), zone(placed[1].node));
    assert.notEqual(zone(placed[2].node), zone(placed[3].node));
  });

  it('moves a member off a dead node to the node that holds nothing of its shard', () => {
    const nodes = [node('a', 'z'), node('b', 'z'), node('c', 'z')];
    const placed = placeAll(nodes, 6, (i) => Math.floor(i / 2));
    const victim = placed[0].node;
    const live = nodes.filter((n) => n.id !== victim);
    for (const m of placed.filter((x) => x.node === victim)) {
      const r = place(m, live, placed, new Set([victim]));
      assert.ok('node' in r);
      const partner = placed.find((x) => x.group === m.group && x.name !== m.name)!;
      assert.notEqual(r.node, partner.node, `${m.name} beside its shard partner`);
      m.node = r.node;
    }
  });

  it('respects required labels and capacity, and says per node why nothing fits', () => {
    const nodes = [node('a', 'z', { labels: { disk: 'hdd' } }), node('b', 'z', { labels: { disk: 'ssd' }, capacity: { cpus: 1, memoryMiB: 512 } })];
    const onSsd = place({ name: 's-0', service: 's', group: 0, labels: { disk: 'ssd' } }, nodes, []);
    assert.deepEqual(onSsd, { node: 'b' });
    const big = place({ name: 's-0', service: 's', group: 0, labels: { disk: 'ssd' }, memoryMiB: 1024, cpus: 2 }, nodes, []);
    assert.ok('why' in big);
    assert.match(big.why, /no node can run s-0/);
    assert.match(big.why, /a: lacks label disk=ssd/);
    assert.match(big.why, /b: has 1 of the 2 CPUs it needs free, has 512 of the 1024 MiB of memory it needs free/);
    // Memory already given to members counts.
    const used: PlacedMember[] = [{ name: 'x-0', service: 'x', group: 0, node: 'a', memoryMiB: 4000 }];
    const r = place({ name: 's-0', service: 's', group: 0, memoryMiB: 200 }, nodes, used);
    assert.deepEqual(r, { node: 'b' });
  });

  it('never puts two members answering one port at the node address on the same node', () => {
    const nodes = [node('a', 'z'), node('b', 'z')];
    const placed: PlacedMember[] = [{ name: 'r-0', service: 'r', group: 0, node: 'a', port: 6379 }];
    assert.deepEqual(place({ name: 'r-1', service: 'r', group: 0, port: 6379 }, nodes, placed), { node: 'b' });
    placed.push({ name: 'r-1', service: 'r', group: 0, node: 'b', port: 6379 });
    const r = place({ name: 'r-2', service: 'r', group: 0, port: 6379 }, nodes, placed);
    assert.ok('why' in r);
    assert.match(r.why, /runs r-0 on port 6379 at the node's own address \(start firecampd with --ip-pool/);
    // With static IPs they may share.
    assert.ok('node' in place({ name: 'r-2', service: 'r', group: 0, port: 6379, ip: '10.0.0.9' }, nodes, placed));
  });

  it('keeps a member pinned to a zone (EBS volume, AWS address) in that zone, and says why when it cannot', () => {
    const nodes = [node('a', 'us-east-1a'), node('b', 'us-east-1b'), node('c', 'us-east-1a')];
    const pinned = { name: 'r-0', service: 'r', group: 0, zone: 'us-east-1a' };
    // a is gone: the only node in the member's zone is c, though b holds less.
    const placed: PlacedMember[] = [{ name: 'x-0', service: 'x', group: 0, node: 'c' }];
    assert.deepEqual(place(pinned, nodes, placed, new Set(['a'])), { node: 'c' });
    const r = place(pinned, nodes, placed, new Set(['a', 'c']));
    assert.ok('why' in r);
    assert.equal(r.why, "no node can run r-0: b: is in zone us-east-1b, and r-0's volume and address are in zone us-east-1a");
  });

  it('never places on a node that is not live, and says so', () => {
    assert.deepEqual(place({ name: 'r-0', service: 'r', group: 0 }, [], []), { why: 'no node to run r-0 on; waiting for one' });
    const nodes = [node('a', 'z', { live: false }), node('b', 'z')];
    assert.deepEqual(place({ name: 'r-0', service: 'r', group: 0 }, nodes, []), { node: 'b' });
    const r = place({ name: 'r-0', service: 'r', group: 0 }, nodes, [], new Set(['b']));
    assert.ok('why' in r);
    assert.equal(r.why, 'no node can run r-0: a: is not live (no node lease: firecampd is down there, or cannot reach its Docker engine)');
  });
});
