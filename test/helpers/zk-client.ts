// A ZooKeeper client for the end-to-end tests, run in the test bed's client
// namespace (node-zookeeper-client, a plain ZooKeeper client). It finds the
// members by their DNS names through the nodes' embedded DNS servers.
//
//   zk-client.ts --dns IP:53[,…] --hosts zk-0.zk.fc.test,… --prefix /a create N
//       creates /a/1 … /a/N, each acknowledged before the next; prints {"acked": N}
//   … --prefix /b load
//       creates /b/1, /b/2 … until stdin closes; prints {"ready":true} after the
//       first acknowledged create, {"resumedAt", "gapMs", "id"} after each outage
//       of over a second, and at the end {"acked": [first, last], "errors", "longestGapMs", "messages"}
//   … --prefix /a check N
//       prints {"present": K, "missing": [up to 20 of 1..N that are not there], "missingCount"}
//
// A create that failed with the connection may still have been applied: it is
// retried, and "node exists" then counts as acknowledged. A znode counts as
// acknowledged only once the ensemble answered its create.
import dns from 'node:dns';
import zookeeper from 'node-zookeeper-client';
import { writeLoop } from './write-loop.ts';

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  if (i < 0 || i + 1 >= args.length) throw new Error(`zk-client: ${name} is required`);
  return args[i + 1];
};
const dnsServers = flag('--dns').split(',');
const names = flag('--hosts').split(',');
const prefix = flag('--prefix');
const mode = ['create', 'check'].includes(args.at(-2) ?? '') ? args.at(-2)! : args.at(-1)!;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function addresses(): Promise<string[]> {
  const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 2 });
  resolver.setServers(dnsServers);
  return Promise.all(names.map(async (n) => `${(await resolver.resolve4(n))[0]}:2181`));
}

let client: zookeeper.Client;

function connect(hosts: string[]): Promise<void> {
  client = zookeeper.createClient(hosts.join(','), { sessionTimeout: 15_000, spinDelay: 200, retries: 0 });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ZooKeeper member of ${hosts.join(',')} answered in 30 s`)), 30_000);
    client.once('connected', () => {
      clearTimeout(timer);
      resolve();
    });
    client.connect();
  });
}

const call = <T>(fn: (cb: (err: Error | zookeeper.Exception | null, v: T) => void) => void, timeoutMs = 10_000): Promise<T> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    fn((err, v) => {
      clearTimeout(timer);
      if (err) reject(err instanceof Error ? err : new Error(err.toString(), { cause: err }));
      else resolve(v);
    });
  });

// The library's exceptions are Errors at run time, though its types say otherwise: look at both.
const isCode = (err: unknown, code: number) => {
  const e = err as { getCode?: () => number; cause?: { getCode?: () => number } };
  return (e.getCode?.() ?? e.cause?.getCode?.()) === code;
};

/** Create path; true once the ensemble has it (ours, or an earlier try of ours that landed). */
async function create(path: string): Promise<void> {
  try {
    await call<string>((cb) => client.create(path, Buffer.from('x'), zookeeper.CreateMode.PERSISTENT, cb));
  } catch (err) {
    if (!isCode(err, zookeeper.Exception.NODE_EXISTS)) throw err;
  }
}

async function main(): Promise<void> {
  const hosts = await addresses();
  await connect(hosts);
  if (mode === 'check') {
    const n = Number(args.at(-1));
    const children = new Set(await call<string[]>((cb) => client.getChildren(prefix, cb)));
    const missing = Array.from({ length: n }, (_, i) => String(i + 1)).filter((c) => !children.has(c));
    process.stdout.write(JSON.stringify({ present: n - missing.length, missing: missing.slice(0, 20), missingCount: missing.length }) + '\n');
    return;
  }
  await create(prefix).catch(async (err) => {
    await sleep(500);
    await create(prefix).catch(() => Promise.reject(err as Error));
  });
  await writeLoop({
    start: 1,
    ...(mode === 'create' ? { end: Number(args.at(-1)) } : {}),
    write: (id) => create(`${prefix}/${id}`),
    // A session that expired (no member reachable for its timeout) never comes back, nor one whose library threw: start a new one.
    afterError: async () => {
      if (client.getState() !== zookeeper.State.EXPIRED && !libraryThrew) return;
      libraryThrew = false;
      client.close();
      await connect(hosts).catch(() => {});
    },
  });
}

// node-zookeeper-client can throw from its socket handlers on a reply it does not expect; a client
// that died of that would print no totals. Say so, and let the loop start a new session: the write
// under way then times out and is retried, and only a create the ensemble answered counts.
let libraryThrew = false;
process.on('uncaughtException', (err) => {
  process.stderr.write(`zk-client: the client library threw, starting a new session: ${err.stack ?? String(err)}\n`);
  libraryThrew = true;
});

main()
  .then(() => client?.close())
  .then(
    () => process.exit(0),
    (err: Error) => {
      process.stderr.write(`zk-client: ${err.message}\n`);
      process.exit(1);
    },
  );
