// Elasticsearch end to end on the test bed with one member: a single-node
// cluster (discovery.type: single-node), with OpenSearch 2.19 in the
// opensearchproject/opensearch stand-in image. A cluster of 3 cannot run on
// these machines (see test/manual/elasticsearch.test.ts: OpenSearch's
// bootstrap checks want 65535 open files, the machine's hard limit is
// 20000); a single node is not checked, so this file runs the type's REST
// paths for real:
//
// - create a single-node service: ACTIVE, the member in its cluster with its
//   node's zone; 10,000 documents bulk-indexed, every one found;
// - its node dies (every process killed, its link down): the member comes
//   back on a live node with its address and volume, every document there;
// - a backup by the snapshot API while a client indexes, restored as es2:
//   every document acknowledged before it began is there; a restore drill
//   counts the indices and documents;
// - a rolling upgrade to another tag: the member on the new image, every
//   document there.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { elasticsearch as elasticsearchType } from '../src/catalog/services/elasticsearch/elasticsearch.ts';
import { image as elasticsearchImage } from '../src/catalog/services/elasticsearch/image.ts';
import type { TestBed } from './bed/bed.ts';
import { REPO } from './helpers/proc.ts';
import {
  assertWalled,
  backupUnderLoad,
  type Cli,
  cliOk,
  completeBackup,
  getService,
  runClient,
  serviceCaFile,
  serviceContext,
  startServiceBed,
} from './helpers/service-bed.ts';
import { startBedPrometheus } from './helpers/prometheus.ts';
import { pollUntil } from './helpers/wait.ts';
const ELASTICSEARCH_IMAGE = elasticsearchType.image;

const LEASE_TTL = 8;
const DOCS = 10_000;
/** The same build under another tag: an upgrade restarts the member all the same. */
const NEXT_IMAGE = elasticsearchImage.tags![0];
const CLIENT = path.join(REPO, 'test', 'helpers', 'search-client.ts');

interface ClusterView {
  status: string;
  nodes: string[];
  zones: Record<string, string>;
}
interface CheckView {
  count: number;
  present: number;
  missing: number[];
  missingCount: number;
}

describe('elasticsearch (single node)', { timeout: 1_500_000 }, () => {
  let bed: TestBed;
  let cli: Cli;
  let ids: string[] = [];
  const dead = new Set<number>();
  const live = () => [0, 1, 2].filter((i) => !dead.has(i));
  const context = () => serviceContext(bed, 'es', live());
  const clientArgs = (index: string, hosts = 'es-0.es.fc.test') => [
    process.execPath,
    '--import',
    'tsx',
    CLIENT,
    '--dns',
    bed.nodes.map((n) => `${n.ip}:53`).join(','),
    '--hosts',
    hosts,
    '--index',
    index,
  ];
  const searchClient = async <T>(index: string, args: string[], hosts?: string): Promise<T> =>
    runClient<T>(bed, [...clientArgs(index, hosts), ...args], 300_000);
  const service = async () => getService(cli, 'es', bed.nodes[live()[0]].addr);
  /** Every document 1 … DOCS found, once the node answers (a single node is the whole cluster: its health is its own). */
  const allThere = async (index = 'docs', n = DOCS, hosts?: string) => {
    const c = await pollUntil(
      () => searchClient<CheckView>(index, ['check', String(n)], hosts).catch((err: Error) => ({ error: err.message }) as unknown as CheckView),
      (v) => v.missingCount === 0,
      { ms: 180_000, what: `every one of ${n} documents of ${index}`, context },
    );
    assert.equal(c.present, n);
    return c;
  };

  before(async () => {
    ({ bed, cli, ids } = await startServiceBed({ leaseTtl: LEASE_TTL, images: [ELASTICSEARCH_IMAGE], outside: true }));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('creates a single-node cluster with its node zone and indexes 10,000 documents', async (t) => {
    const started = Date.now();
    const create = await cli(
      ['service', 'create', '--type', 'elasticsearch', '--name', 'es', '--replicas', '1', '--heap-mib', '384', '--volume-size', '256'].concat([
        '--allow',
        `${bed.client!.ip}/32`,
        '--timeout',
        '400',
        '--addr',
        bed.nodes[1].addr,
      ]),
    );
    assert.equal(create.code, 0, `${create.stderr}\n${context()}`);
    t.diagnostic(`create → ACTIVE: ${Date.now() - started} ms`);
    const scale = await cli(['service', 'scale', 'es', '3', '--addr', bed.nodes[0].addr]);
    assert.notEqual(scale.code, 0, 'a single-node cluster is not scaled');
    assert.match(scale.stderr, /single-node cluster/);
    // The wall: HTTP and transport, from the access list's namespace and from outside it.
    await assertWalled(bed, (await service()).members, [9200, 9300]);
    const c = await searchClient<ClusterView>('-', ['cluster']);
    assert.deepEqual(c.nodes, ['es-0']);
    assert.deepEqual(c.zones, { 'es-0': 'default' }, 'node.attr.zone from FIRECAMPD_ZONE');
    const bulk = await searchClient<{ indexed: number; count: number }>('docs', ['bulk', String(DOCS)]);
    assert.deepEqual(bulk, { indexed: DOCS, count: DOCS });
    // Its metrics: a real Prometheus finds its exporter through the nodes' discovery; the cluster's health and documents as the exporter tells them.
    const prom = await startBedPrometheus(bed, await serviceCaFile(cli, 'es', bed.nodes[0].addr));
    try {
      await pollUntil(
        () => prom.query('elasticsearch_indices_docs{service="es", member="es-0", type="elasticsearch"}'),
        // Its node's documents: ours, and any of OpenSearch's own indices.
        (r) => r.length === 1 && r[0].value >= DOCS,
        { ms: 60_000, what: `elasticsearch_indices_docs of es-0 at ${DOCS} or more`, context: () => prom.log() },
      );
    } finally {
      await prom.stop();
    }
  });

  it("comes back on a live node with its address and every document after its node's death", async (t) => {
    const before = (await service()).members[0];
    const victim = ids.indexOf(before.node);
    const killedAt = Date.now();
    bed.die(victim);
    dead.add(victim);
    const after = await pollUntil(service, (s) => s.members[0].node !== before.node && s.members[0].state === 'running' && s.status === 'ACTIVE', {
      ms: 240_000,
      what: 'es-0 running and ACTIVE on a live node',
      context,
    });
    assert.equal(after.members[0].ip, before.ip, 'es-0 kept its address');
    assert.equal((await allThere()).count, DOCS);
    t.diagnostic(`kill → es-0 answering with every document, on another node: ${Date.now() - killedAt} ms`);
  });

  it('backs up by the snapshot API while a client indexes, and restores as es2: every document acknowledged before the backup began is there; a restore drill counts them', async (t) => {
    const addr = bed.nodes[live()[0]].addr;
    const ok = cliOk(cli, addr, () => serviceContext(bed, 'es2', live()));
    await ok(['backup', 'target', 'set', `dir:${path.join(bed.shared, 'backups')}`]);
    const { ackedBefore, made, stats } = await backupUnderLoad(bed, ok, 'es', [...clientArgs('live'), 'load'], context);
    assert.deepEqual([made.status, made.parts.map((p) => p.name)], ['complete', ['repo', 'snapshot']]);
    assert.equal(stats.errors, 0, `indexing went on through the snapshot: ${JSON.stringify(stats.messages)}`);
    const id = await completeBackup(ok, 'es');
    const started = Date.now();
    await ok(['backup', 'restore', id, '--as', 'es2', '--timeout', '400']);
    t.diagnostic(`restore as es2 → ACTIVE (its indices restored from the snapshot): ${Date.now() - started} ms`);
    assert.equal((await allThere('docs', DOCS, 'es2-0.es2.fc.test')).count, DOCS);
    // And those indexed while the snapshot ran: more documents, never fewer.
    await allThere('live', ackedBefore, 'es2-0.es2.fc.test');
    await ok(['service', 'delete', 'es2']);
    const drill = JSON.parse(await ok(['backup', 'verify', id, '--json', '--timeout', '400'])) as { status: string; summary: string };
    assert.equal(drill.status, 'ok', JSON.stringify(drill));
    const counted = /^(\d+) indices, (\d+) documents$/.exec(drill.summary);
    assert.ok(counted && Number(counted[1]) === 2 && Number(counted[2]) >= DOCS + ackedBefore, `the drill counted ${drill.summary}`);
  });

  it('upgrades the member to another tag, every document still there', async (t) => {
    const started = Date.now();
    const up = await cli(['service', 'upgrade', 'es', '--image', NEXT_IMAGE, '--timeout', '400', '--addr', bed.nodes[live()[0]].addr]);
    assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
    t.diagnostic(`upgrade: ${Date.now() - started} ms`);
    assert.equal((await service()).members[0].image, NEXT_IMAGE);
    assert.equal((await allThere()).count, DOCS);
  });
});
