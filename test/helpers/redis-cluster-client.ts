// A Redis Cluster client for the tests, run inside the client namespace
// (nsenter --net=…): it finds the cluster by the members' DNS names through a
// firecampd node's DNS server, then follows the cluster's own redirections.
// Every member requires the service's password (`firecampd service
// credentials NAME`): give it as --password=VALUE (the = form, since a
// generated password may begin with a dash). With --ca FILE (what `service
// ca NAME` printed) it speaks TLS and checks each member's certificate.
//
//   redis-cluster-client.ts --dns IP:PORT --seed NAME[,NAME…] --password=PW write N
//   … read N       every key:i must hold value-i; prints how many did
//   … load         SET/GET until stdin closes; prints {"ready":true} after its
//                  first good SET/GET, then ok/errors/longest gap at the end
//   … slots        the masters' slot ranges, in slot order: {"slots": ["0-5460", …]}
//
// Prints one JSON line (load: two; the result is the last).
import dns from 'node:dns';
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Cluster } from 'ioredis';

const { values, positionals } = parseArgs({
  options: { dns: { type: 'string' }, seed: { type: 'string' }, password: { type: 'string' }, ca: { type: 'string' } },
  allowPositionals: true,
});
const opt = (name: keyof typeof values): string => {
  const v = values[name];
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
};
const [command, count] = positionals;
const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 2 });
resolver.setServers([opt('dns')]);

const cluster = new Cluster(
  opt('seed')
    .split(',')
    .map((host) => ({ host, port: 6379 })),
  {
    dnsLookup: (host, cb) =>
      void resolver.resolve4(host).then(
        (a) => cb(null, a[0]),
        (err) => cb(err, ''),
      ),
    enableAutoPipelining: true,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    maxRedirections: 32,
    slotsRefreshTimeout: 2000,
    // Every connection, to the seeds and to the members the cluster names, authenticates (AUTH default PW).
    redisOptions: {
      password: opt('password'),
      connectTimeout: 2000,
      maxRetriesPerRequest: 20,
      // Members are dialled by the addresses the cluster names, which their certificates hold.
      ...(values.ca ? { tls: { ca: fs.readFileSync(values.ca, 'utf8'), rejectUnauthorized: true } } : {}),
    },
  },
);
cluster.on('error', () => {}); // commands report their own failures

async function main(): Promise<unknown> {
  const n = Number(count ?? 0);
  if (command === 'write') {
    for (let i = 0; i < n; i += 500) await Promise.all(Array.from({ length: Math.min(500, n - i) }, (_, j) => cluster.set(`key:${i + j}`, `value-${i + j}`)));
    return { written: n };
  }
  if (command === 'read') {
    let good = 0;
    const wrong: string[] = [];
    for (let i = 0; i < n; i += 500) {
      const got = await Promise.all(Array.from({ length: Math.min(500, n - i) }, (_, j) => cluster.get(`key:${i + j}`)));
      got.forEach((v, j) => (v === `value-${i + j}` ? good++ : wrong.length < 5 && wrong.push(`key:${i + j}=${v}`)));
    }
    return { good, wrong };
  }
  if (command === 'load') {
    let stop = false;
    process.stdin.on('data', () => {}).on('end', () => (stop = true));
    let ok = 0;
    let errors = 0;
    let last = Date.now();
    let gap = 0;
    let ready = false;
    const messages = new Set<string>();
    for (let i = 0; !stop; i++) {
      try {
        await cluster.set(`load:${i % 1000}`, String(i));
        if ((await cluster.get(`load:${i % 1000}`)) !== String(i)) throw new Error(`load:${i % 1000} did not read back`);
        ok++;
        if (!ready) {
          ready = true;
          process.stdout.write('{"ready":true}\n');
        }
        gap = Math.max(gap, Date.now() - last);
        last = Date.now();
      } catch (err) {
        errors++;
        messages.add((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return { ok, errors, longestGapMs: gap, messages: [...messages].slice(0, 5) };
  }
  if (command === 'slots') {
    // Each master's slot ranges, in slot order: the cluster's layout.
    const slots = (await cluster.cluster('SLOTS')) as [number, number][];
    return { slots: slots.map(([a, b]) => `${a}-${b}`).sort((x, y) => Number(x.split('-')[0]) - Number(y.split('-')[0])) };
  }
  throw new Error(`unknown command ${command}: write N, read N, load or slots`);
}

main()
  .then((r) => process.stdout.write(JSON.stringify(r) + '\n'))
  .catch((err) => {
    process.stdout.write(JSON.stringify({ error: (err as Error).message }) + '\n');
    process.exitCode = 1;
  })
  .finally(() => cluster.disconnect());
