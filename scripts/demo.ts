// npm run demo: a 3-node firecampd cluster in network namespaces, each node
// with its own dockerd, a client namespace, and a Redis service; it prints
// what to try next (with the service's generated password, which every member
// requires) and cleans everything up on Ctrl-C. Needs root, Docker
// (docker.io), busybox-static, redis-server and redis-tools.
import fs from 'node:fs';
import path from 'node:path';
import { TestBed } from '../test/bed/bed.ts';
import { runCli, tempDir } from '../test/helpers/proc.ts';

const say = (s: string) => process.stdout.write(s + '\n');

async function main(): Promise<void> {
  say('firecampd demo: making 3 nodes in network namespaces, each with its own dockerd …');
  const bed = await TestBed.create({ nodes: 3, clientNamespace: true, docker: true });
  for (let i = 0; i < 3; i++) {
    await bed.start(i, [
      '--volumes',
      `loop:${bed.shared}`,
      '--static-ips',
      'local:eth0',
      '--ip-pool',
      '10.77.0.200-10.77.0.220',
      '--lease-ttl',
      '5',
      '--dns-domain',
      'demo.local',
    ]);
    say(`  node ${bed.nodes[i].ns} up at ${bed.nodes[i].addr}`);
  }
  const caFile = path.join(tempDir('fc-demo-'), 'ca.crt');
  fs.copyFileSync(path.join(bed.nodes[0].dataDir, 'tls', 'ca.crt'), caFile);
  const env = { FIRECAMPD_TOKEN: bed.token, FIRECAMPD_CA_FILE: caFile, FIRECAMPD_ADDR: bed.nodes[0].addr };
  say('creating a Redis cluster: 3 shards, each a master and a replica on other nodes …');
  for (let attempt = 0; ; attempt++) {
    const r = await runCli(
      ['service', 'create', '--type', 'redis', '--name', 'cache', '--shards', '3', '--replicas-per-shard', '1', '--volume-size', '64'],
      env,
    );
    if (r.code === 0) {
      say(r.stdout.trim());
      break;
    }
    // The agents take their leases a moment after the nodes start.
    if (attempt > 20) throw new Error(r.stderr.trim());
    await new Promise((res) => setTimeout(res, 1000));
  }
  const first = (JSON.parse((await runCli(['service', 'get', 'cache', '--json'], env)).stdout) as { members: { ip: string }[] }).members[0];
  const frozen = bed.nodes[2];
  say(`
Try next, in another shell (as root):

  export FIRECAMPD_TOKEN=${bed.token} FIRECAMPD_CA_FILE=${caFile} FIRECAMPD_ADDR=${bed.nodes[0].addr}
  npm start -- service get cache              # members, nodes, IPs, state
  npm start -- cluster members
  npm start -- service credentials cache      # the password every client gives (user default)

  # every member requires it (a client without it gets NOAUTH); redis-cli takes it from REDISCLI_AUTH:
  export REDISCLI_AUTH="$(npm start --silent -- service credentials cache --json | node -p "JSON.parse(require('fs').readFileSync(0, 'utf8')).credentials.find((c) => c.secret === 'password').value")"
  nsenter --net=/var/run/netns/${bed.client!.ns} redis-cli -c -h ${first.ip} set hello world
  nsenter --net=/var/run/netns/${bed.client!.ns} redis-cli -c -h ${first.ip} get hello
  nsenter --net=/var/run/netns/${bed.client!.ns} redis-cli -h ${first.ip} cluster nodes

  # the members' names, from any node's DNS server:
  node -e "const r=new (require('dns').promises.Resolver)();r.setServers(['${bed.nodes[1].ip}:53']);r.resolve4('cache-0.cache.demo.local').then(console.log)"

  # freeze the daemon of a node (its watchdog stops its members, drops their
  # addresses and lets go of their volumes), and watch them come back on the others:
  kill -STOP ${frozen.proc!.pid}      # ${frozen.ns}'s firecampd
  watch -n1 npm start -- service get cache
  kill -CONT ${frozen.proc!.pid}      # it comes back empty-handed, and takes new members again

Press Ctrl-C here to stop everything and clean up.`);
  await new Promise(() => {});
}

main().catch((err) => {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
  process.exit(1);
});
