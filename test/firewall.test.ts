// Access lists: the parsing a user meets, the walls worked out from a real
// controldb store, and the node's table made by the real nft in network
// namespaces of the test's own: a listener on a member's static IP, one
// client inside the list and one outside. The one outside gets no answer at
// all (dropped, not refused); a change of the list lets it in at once.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import type { MemberSpec } from '../src/agent/members.ts';
import { memberKey } from '../src/agent/members.ts';
import { NODES_PREFIX } from '../src/controldb/membership.ts';
import { UserError } from '../src/errors.ts';
import { run } from '../src/exec.ts';
import { canonicalCidr, parseAllow } from '../src/firewall/allow.ts';
import { NodeFirewall } from '../src/firewall/firewall.ts';
import { wallsOn } from '../src/firewall/walls.ts';
import { serviceKey } from '../src/catalog/types.ts';
import { createLogger } from '../src/log.ts';
import { REPO } from './helpers/proc.ts';
import { replica } from './helpers/replica.ts';
import { pollUntil } from './helpers/wait.ts';

const execFileAsync = promisify(execFile);
const TCP_PROBE = path.join(REPO, 'test', 'helpers', 'tcp-probe.ts');

const node = (id: string, ip: string, network?: string) => ({ id, name: id, addr: `${ip}:27040`, zone: 'default', ...(network ? { network } : {}) });
const member = (service: string, i: number, nodeId: string, ip?: string): MemberSpec => ({
  service,
  name: `${service}-${i}`,
  node: nodeId,
  epoch: 1,
  image: 'postgres:15',
  port: 5432,
  ports: [5432],
  ...(ip ? { ip } : {}),
});
const service = (name: string, allow?: string[], needs?: Record<string, string>) => ({
  spec: { type: 'postgres', name, replicas: 2, ...(allow ? { allow } : {}), ...(needs ? { needs } : {}) },
  status: 'ACTIVE',
  message: '',
  created_at: new Date().toISOString(),
  updated_at: new Date().toISOString(),
});

describe('access lists', () => {
  it('takes networks and addresses, in canonical form, and refuses what is not an IPv4 network with what to write', () => {
    assert.deepEqual(parseAllow(['10.1.2.3/16,192.0.2.7', ' 10.1.0.0/16 ']), ['10.1.0.0/16', '192.0.2.7/32']);
    assert.equal(canonicalCidr('0.0.0.0/0'), '0.0.0.0/0');
    for (const bad of ['10.0.0.0/33', 'example.com', '2001:db8::/32', '10.0.0/8']) {
      assert.throws(
        () => parseAllow([bad]),
        (err: Error) => err instanceof UserError && err.message.includes(`"${bad}"`) && /ADDRESS\/PREFIX/.test(err.message),
        bad,
      );
    }
    assert.throws(() => parseAllow([',']), /at least one network/);
  });

  it("walls only the services with members on the node: nodes, the service's members, those of services that need it, and its list or the nodes' networks", async () => {
    const { store, put } = replica();
    await put(NODES_PREFIX + 'a', node('a', '10.0.1.5', '10.0.1.0/24'));
    await put(NODES_PREFIX + 'b', node('b', '10.0.2.5'));
    await put(serviceKey('pg'), service('pg', ['192.0.2.0/24']));
    await put(serviceKey('app'), service('app', undefined, { kafka: 'pg' }));
    await put(serviceKey('other'), service('other'));
    await put(memberKey('pg', 'pg-0'), member('pg', 0, 'a', '10.0.1.200'));
    await put(memberKey('pg', 'pg-1'), member('pg', 1, 'b', '10.0.2.200'));
    await put(memberKey('app', 'app-0'), member('app', 0, 'b', '10.0.2.201'));
    await put(memberKey('other', 'other-0'), member('other', 0, 'a'));
    const walls = wallsOn(store, 'a');
    assert.deepEqual(
      walls.map((w) => w.service),
      ['other', 'pg'],
      'app has no member on a',
    );
    const pg = walls.find((w) => w.service === 'pg')!;
    assert.deepEqual(pg.ips, ['10.0.1.200']);
    assert.deepEqual(pg.ports, []);
    assert.deepEqual(pg.sources.sort(), ['10.0.1.200/32', '10.0.1.5/32', '10.0.2.200/32', '10.0.2.201/32', '10.0.2.5/32', '192.0.2.0/24'].sort());
    const other = walls.find((w) => w.service === 'other')!;
    assert.deepEqual(other.ports, [5432], 'no static IP: its ports, on any of the node’s addresses');
    assert.ok(other.sources.includes('10.0.1.0/24') && other.sources.includes('10.0.2.5/32'), `the nodes' networks by default: ${other.sources.join(' ')}`);
    assert.deepEqual(
      wallsOn(store, 'b', [member('other', 0, 'a')]).map((w) => w.service),
      ['app', 'other', 'pg'],
      'a member still held here while it moves keeps its wall',
    );
    store.close();
  });

  describe('on a host', () => {
    const ns = { host: 'fcfw-host', inside: 'fcfw-in', outside: 'fcfw-out' };
    let listener: ChildProcess | undefined;
    const sh = (args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });
    const inNs = (n: string) => async (script: string) => {
      await run('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: script });
    };
    /** A TCP connect from namespace `from` to the member at 10.78.0.200:5432: "open", "refused", or "dropped". */
    const connect = async (from: string) =>
      (await execFileAsync('ip', ['netns', 'exec', from, process.execPath, '--import', 'tsx', TCP_PROBE, '10.78.0.200', '5432'], { cwd: REPO })).stdout.trim();

    const removeNamespaces = () => {
      for (const n of Object.values(ns)) {
        try {
          execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
        } catch {
          // not there
        }
      }
    };
    // Left by a run that died before its cleanup.
    before(removeNamespaces);
    after(() => {
      listener?.kill('SIGKILL');
      removeNamespaces();
    });

    it('drops every packet to the member from outside the list, lets the list in, and a change lets the second network in at once', async () => {
      // The host at 10.78.0.1 with the member's address 10.78.0.200; clients at .10 (inside) and .20 (outside).
      for (const n of Object.values(ns)) sh(['netns', 'add', n]);
      for (const [n, ip] of [
        [ns.inside, '10.78.0.10'],
        [ns.outside, '10.78.0.20'],
      ] as const) {
        const veth = `${n.slice(5)}0`;
        sh(['link', 'add', veth, 'netns', n, 'type', 'veth', 'peer', 'name', `${veth}h`, 'netns', ns.host]);
        sh(['-n', n, 'addr', 'add', `${ip}/32`, 'dev', veth]);
        sh(['-n', n, 'link', 'set', veth, 'up']);
        sh(['-n', n, 'route', 'add', '10.78.0.0/24', 'dev', veth]);
        sh(['-n', ns.host, 'link', 'set', `${veth}h`, 'up']);
        sh(['-n', ns.host, 'route', 'add', `${ip}/32`, 'dev', `${veth}h`]);
      }
      sh(['-n', ns.host, 'link', 'set', 'lo', 'up']);
      sh(['-n', ns.host, 'addr', 'add', '10.78.0.1/32', 'dev', 'lo']);
      sh(['-n', ns.host, 'addr', 'add', '10.78.0.200/32', 'dev', 'lo']);
      listener = spawn('ip', ['netns', 'exec', ns.host, process.execPath, '-e', "require('net').createServer(s=>s.end()).listen(5432,'10.78.0.200')"]);
      await pollUntil(
        () => connect(ns.outside),
        (r) => r === 'open',
        { ms: 10_000, what: 'the listener, before any wall' },
      );

      const { put, db } = replica();
      await put(NODES_PREFIX + 'a', node('a', '10.78.0.1', '10.78.0.1/32'));
      await put(serviceKey('pg'), service('pg', ['10.78.0.10/32']));
      await put(memberKey('pg', 'pg-0'), member('pg', 0, 'a', '10.78.0.200'));
      const fw = new NodeFirewall({ db, nodeId: 'a', log: createLogger({ level: 'error' }), apply: inNs(ns.host) });
      await fw.start();
      try {
        assert.deepEqual(fw.status(), { ok: true, services: ['pg'] });
        assert.equal(await connect(ns.inside), 'open', 'inside the list');
        assert.equal(await connect(ns.outside), 'dropped', 'outside: no answer at all, not a refusal');
        const table = execFileSync('ip', ['netns', 'exec', ns.host, 'nft', 'list', 'tables'], { encoding: 'utf8' });
        assert.match(table, new RegExp(`table inet ${fw.table}`));

        // service config --allow: the record changes, the watch makes the table again.
        await put(serviceKey('pg'), service('pg', ['10.78.0.10/32', '10.78.0.20/32']));
        await pollUntil(
          () => connect(ns.outside),
          (r) => r === 'open',
          { ms: 10_000, what: 'the second network let in' },
        );

        // The member moved away: its wall goes with it.
        await put(memberKey('pg', 'pg-0'), member('pg', 0, 'b', '10.78.0.200'));
        await put(serviceKey('pg'), service('pg', ['10.78.0.10/32']));
        await pollUntil(
          () => Promise.resolve(fw.status().services),
          (s) => s.length === 0,
          { ms: 10_000, what: 'no wall left on the node' },
        );
        assert.equal(await connect(ns.outside), 'open', 'no member here, no wall');
      } finally {
        fw.stop();
      }
    });

    it('says what to install when nft is missing, and a member that needs its wall does not start', async () => {
      const { put, db } = replica();
      await put(NODES_PREFIX + 'a', node('a', '10.78.0.1'));
      await put(serviceKey('pg'), service('pg'));
      const fw = new NodeFirewall({
        db,
        nodeId: 'a',
        log: createLogger({ level: 'error' }),
        apply: (script) => run('nft-that-is-not-here', ['-f', '-'], { input: script }).then(() => {}),
      });
      await fw.start();
      assert.match(fw.status().error ?? '', /nft is not installed: install nftables/, 'said at start, before any member is placed here');
      await assert.rejects(fw.guard(member('pg', 0, 'a', '10.78.0.200')), /install nftables/);
      assert.equal(fw.status().ok, false);
      fw.stop();
    });
  });
});
