// An Elasticsearch REST client for the end-to-end tests, run in the test bed's
// client namespace: Node's fetch against the members' addresses, which it
// finds by their DNS names through the nodes' embedded DNS servers. Requests
// go to one member at a time; a failed one moves on to the next member.
//
//   search-client.ts --dns IP:53[,…] --hosts es-0.es.fc.test,… --index docs bulk N
//       makes the index (3 shards, 1 replica) and indexes documents 1 … N in bulk requests of 1,000, then
//       refreshes; prints {"indexed": N, "count": C}
//   … --index load load
//       indexes documents 1, 2 … one at a time until stdin closes (test/helpers/write-loop.ts: {"ready":true},
//       {"resumedAt"…} after each outage, and at the end {"acked": [first, last], "errors", "longestGapMs", "messages"})
//   … --index docs search
//       searches the index until stdin closes, in the write loop's shape: a search counts once it answers with
//       every shard (a partial answer is a failure)
//   … --index docs check N
//       refreshes, counts, and looks up every id 1 … N; prints {"count", "present", "missing": [up to 20], "missingCount"}
//   … cluster
//       prints {"status", "nodes": [names], "clusterManager", "zones": {name: zone}}, asked of the first member that answers
//
// A document counts as acknowledged once a member answered its index request
// with 200 or 201: it is then in the translog of the primary and of every
// in-sync replica. A retry after a failure writes the same id again, so a
// request that landed before its answer was lost counts once.
import dns from 'node:dns';
import { writeLoop } from './write-loop.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`search-client: ${name} is required`);
  return args[i + 1];
};
const MODES = ['bulk', 'load', 'search', 'check', 'cluster'];
const modeAt = args.findIndex((a, i) => MODES.includes(a) && (i === 0 || !args[i - 1].startsWith('--')));
const mode = args[modeAt];
const count = Number(args[modeAt + 1] ?? 0);
const index = mode === 'cluster' ? '' : flag('--index');

let hosts: string[] = [];
let current = 0;

async function resolveHosts(): Promise<string[]> {
  const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 2 });
  resolver.setServers(flag('--dns').split(','));
  return Promise.all(
    flag('--hosts')
      .split(',')
      .map(async (n) => (await resolver.resolve4(n))[0]),
  );
}

/** One request to the current member; on a failure (no answer, or an error status) the next request goes to the next member. */
async function call<T>(method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  const host = hosts[current % hosts.length];
  try {
    const res = await fetch(`http://${host}:9200${path}`, {
      method,
      ...(body !== undefined
        ? {
            headers: { 'content-type': typeof body === 'string' ? 'application/x-ndjson' : 'application/json' },
            body: typeof body === 'string' ? body : JSON.stringify(body),
          }
        : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} at ${host}: ${res.status} ${text.slice(0, 200)}`);
    return JSON.parse(text) as T;
  } catch (err) {
    current++;
    const cause = (err as { cause?: Error }).cause;
    throw new Error(`${host}: ${cause?.message ?? (err as Error).message}`, { cause: err });
  }
}

async function ensureIndex(): Promise<void> {
  try {
    await call('PUT', `/${index}`, { settings: { number_of_shards: 3, number_of_replicas: 1 } }, 30_000);
  } catch (err) {
    if (!/resource_already_exists_exception/.test((err as Error).message)) throw err;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Try `fn` until it works or `ms` pass: the setup steps, before anything is measured. */
async function retrying<T>(fn: () => Promise<T>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

async function bulk(n: number): Promise<void> {
  const batch = 1000;
  for (let start = 1; start <= n; start += batch) {
    const ids = Array.from({ length: Math.min(batch, n - start + 1) }, (_, i) => start + i);
    const body = ids.map((id) => `${JSON.stringify({ index: { _id: String(id) } })}\n${JSON.stringify({ n: id, text: `document ${id}` })}\n`).join('');
    const r = await retrying(() => call<{ errors: boolean; items: { index: { status: number; error?: unknown } }[] }>('POST', `/${index}/_bulk`, body, 60_000));
    const failed = r.items.filter((i) => i.index.status >= 300);
    if (failed.length > 0) throw new Error(`${failed.length} of a bulk request failed: ${JSON.stringify(failed[0])}`);
  }
  await retrying(() => call('POST', `/${index}/_refresh`));
  const c = await retrying(() => call<{ count: number }>('GET', `/${index}/_count`));
  process.stdout.write(JSON.stringify({ indexed: n, count: c.count }) + '\n');
}

async function check(n: number): Promise<void> {
  await retrying(() => call('POST', `/${index}/_refresh`));
  const c = await retrying(() => call<{ count: number }>('GET', `/${index}/_count`));
  const missing: number[] = [];
  for (let start = 1; start <= n; start += 1000) {
    const ids = Array.from({ length: Math.min(1000, n - start + 1) }, (_, i) => String(start + i));
    const r = await retrying(() => call<{ docs: { _id: string; found: boolean }[] }>('POST', `/${index}/_mget?_source=false`, { ids }, 30_000));
    for (const d of r.docs) if (!d.found) missing.push(Number(d._id));
  }
  process.stdout.write(JSON.stringify({ count: c.count, present: n - missing.length, missing: missing.slice(0, 20), missingCount: missing.length }) + '\n');
}

async function cluster(): Promise<void> {
  const nodes = await retrying(() =>
    call<{ name: string; 'node.role': string; cluster_manager: string }[]>('GET', '/_cat/nodes?format=json&h=name,node.role,cluster_manager'),
  );
  const health = await retrying(() => call<{ status: string }>('GET', '/_cluster/health'));
  const attrs = await retrying(() => call<{ node: string; attr: string; value: string }[]>('GET', '/_cat/nodeattrs?format=json&h=node,attr,value'));
  process.stdout.write(
    JSON.stringify({
      status: health.status,
      nodes: nodes.map((n) => n.name).sort(),
      clusterManager: nodes.find((n) => n.cluster_manager === '*')?.name,
      zones: Object.fromEntries(attrs.filter((a) => a.attr === 'zone').map((a) => [a.node, a.value])),
    }) + '\n',
  );
}

async function main(): Promise<void> {
  hosts = await resolveHosts();
  if (mode === 'cluster') return cluster();
  if (mode === 'check') return check(count);
  await retrying(ensureIndex);
  if (mode === 'bulk') return bulk(count);
  if (mode === 'load') {
    return writeLoop({
      start: 1,
      write: async (id) => {
        await call('PUT', `/${index}/_doc/${id}`, { n: id, text: `document ${id}` });
      },
      paceMs: 10,
    });
  }
  return writeLoop({
    start: 1,
    write: async (n) => {
      const r = await call<{ _shards: { total: number; successful: number; failed: number } }>('GET', `/${index}/_search?size=1&q=text:${n % 1000}`);
      if (r._shards.failed > 0 || r._shards.successful < r._shards.total) throw new Error(`a partial answer: ${JSON.stringify(r._shards)}`);
    },
    paceMs: 50,
  });
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    process.stderr.write(`search-client: ${err.message}\n`);
    process.exit(1);
  },
);
