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
// - a rolling upgrade to another tag: the member on the new image, every
//   document there.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { elasticsearch as elasticsearchType } from '../src/catalog/services/elasticsearch/elasticsearch.ts';
import { image as elasticsearchImage } from '../src/catalog/services/elasticsearch/image.ts';
import type { TestBed } from './bed/bed.ts';
import { REPO } from './helpers/proc.ts';
import { getService, runClient, serviceContext, startServiceBed, type Cli } from './helpers/service-bed.ts';
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

describe('elasticsearch (single node)', { timeout: 900_000 }, () => {
  let bed: TestBed;
  let cli: Cli;
  let ids: string[] = [];
  const dead = new Set<number>();
  const live = () => [0, 1, 2].filter((i) => !dead.has(i));
  const context = () => serviceContext(bed, 'es', live());
  const searchClient = async <T>(index: string, args: string[]): Promise<T> => {
    const cmd = [process.execPath, '--import', 'tsx', CLIENT, '--dns', bed.nodes.map((n) => `${n.ip}:53`).join(','), '--hosts', 'es-0.es.fc.test'];
    return runClient<T>(bed, [...cmd, '--index', index, ...args], 300_000);
  };
  const service = async () => getService(cli, 'es', bed.nodes[live()[0]].addr);
  /** Every document 1 … DOCS found, once the node answers (a single node is the whole cluster: its health is its own). */
  const allThere = async () => {
    const c = await pollUntil(
      () => searchClient<CheckView>('docs', ['check', String(DOCS)]).catch((err: Error) => ({ error: err.message }) as unknown as CheckView),
      (v) => v.missingCount === 0,
      { ms: 180_000, what: `every one of ${DOCS} documents`, context },
    );
    assert.deepEqual([c.count, c.present], [DOCS, DOCS]);
  };

  before(async () => {
    ({ bed, cli, ids } = await startServiceBed({ leaseTtl: LEASE_TTL, images: [ELASTICSEARCH_IMAGE] }));
  });
  after(async () => {
    await bed?.destroy();
  });

  it('creates a single-node cluster with its node zone and indexes 10,000 documents', async (t) => {
    const started = Date.now();
    const create = await cli(
      ['service', 'create', '--type', 'elasticsearch', '--name', 'es', '--replicas', '1', '--heap-mib', '384', '--volume-size', '256'].concat([
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
    const c = await searchClient<ClusterView>('-', ['cluster']);
    assert.deepEqual(c.nodes, ['es-0']);
    assert.deepEqual(c.zones, { 'es-0': 'default' }, 'node.attr.zone from FIRECAMPD_ZONE');
    const bulk = await searchClient<{ indexed: number; count: number }>('docs', ['bulk', String(DOCS)]);
    assert.deepEqual(bulk, { indexed: DOCS, count: DOCS });
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
    await allThere();
    t.diagnostic(`kill → es-0 answering with every document, on another node: ${Date.now() - killedAt} ms`);
  });

  it('upgrades the member to another tag, every document still there', async (t) => {
    const started = Date.now();
    const up = await cli(['service', 'upgrade', 'es', '--image', NEXT_IMAGE, '--timeout', '400', '--addr', bed.nodes[live()[0]].addr]);
    assert.equal(up.code, 0, `${up.stderr}\n${context()}`);
    t.diagnostic(`upgrade: ${Date.now() - started} ms`);
    assert.equal((await service()).members[0].image, NEXT_IMAGE);
    await allThere();
  });
});
