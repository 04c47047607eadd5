// The embedded DNS server on real sockets: answers, refusals, TCP, garbage.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as dnsPacket from 'dns-packet';
import { DnsServer, type DnsAnswer } from '../src/agent/dns-server.ts';
import { createLogger } from '../src/log.ts';

describe('dns server', () => {
  const records = new Map<string, DnsAnswer>([
    ['cache-0.cache.fc.test', { a: ['10.0.0.50'] }],
    ['cache.fc.test', { srv: [{ target: 'cache-0.cache.fc.test', port: 6379 }] }],
  ]);
  const server = new DnsServer({ zone: 'fc.test', lookup: (n) => records.get(n), log: createLogger({ level: 'fatal', pretty: false }) });
  let port = 0;
  const resolver = new dns.promises.Resolver({ timeout: 1000, tries: 1 });
  before(async () => {
    port = await server.listen('127.0.0.1', 0);
    resolver.setServers([`127.0.0.1:${port}`]);
  });
  after(() => server.close());

  it('answers A and SRV records, NXDOMAIN inside the zone, REFUSED outside it', async () => {
    assert.deepEqual(await resolver.resolve4('CACHE-0.cache.fc.test'), ['10.0.0.50']);
    assert.deepEqual(await resolver.resolveSrv('cache.fc.test'), [{ name: 'cache-0.cache.fc.test', port: 6379, priority: 0, weight: 10 }]);
    await assert.rejects(resolver.resolve4('nope.fc.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve4('example.com'), { code: 'EREFUSED' });
    records.set('cache-0.cache.fc.test', { a: ['10.0.0.51'] });
    assert.deepEqual(await resolver.resolve4('cache-0.cache.fc.test'), ['10.0.0.51'], 'answers change at once: nothing cached');
  });

  it('answers over TCP, several queries on one connection', async () => {
    const sock = net.connect(port, '127.0.0.1');
    const answers: dnsPacket.Packet[] = [];
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        answers.push(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    for (const id of [1, 2]) sock.write(dnsPacket.streamEncode({ type: 'query', id, flags: 0, questions: [{ type: 'A', name: 'cache-0.cache.fc.test' }] }));
    const deadline = Date.now() + 10_000;
    while (answers.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    sock.destroy();
    assert.deepEqual(
      answers.map((a) => [a.id, (a.answers?.[0] as { data: string }).data, a.flags! & dnsPacket.AUTHORITATIVE_ANSWER]),
      [
        [1, '10.0.0.51', dnsPacket.AUTHORITATIVE_ANSWER],
        [2, '10.0.0.51', dnsPacket.AUTHORITATIVE_ANSWER],
      ],
    );
  });

  it('survives garbage on UDP and TCP', async () => {
    const udp = dgram.createSocket('udp4');
    // Every datagram sent before the socket closes (a close drops sends still queued), rather than a pause that might be too short.
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) => new Promise<void>((sent) => udp.send(randomBytes(1 + (i % 600)), port, '127.0.0.1', () => sent()))),
    );
    udp.close();
    await new Promise<void>((resolve) => {
      // A framed message of random bytes: the server cannot decode it and hangs up at once.
      const s = net.connect(port, '127.0.0.1', () => s.write(Buffer.concat([Buffer.from([0, 100]), randomBytes(5000)])));
      s.on('close', () => resolve());
      s.on('error', () => {});
    });
    assert.deepEqual(await resolver.resolve4('cache-0.cache.fc.test'), ['10.0.0.51']);
  });

  it('closes at once although a TCP client stays connected', async () => {
    const other = new DnsServer({ zone: 'fc.test', lookup: () => undefined, log: createLogger({ level: 'fatal', pretty: false }) });
    const p = await other.listen('127.0.0.1', 0);
    const idle = net.connect(p, '127.0.0.1');
    idle.on('error', () => {});
    await new Promise((r) => idle.once('connect', r));
    const closedByServer = new Promise((r) => idle.once('close', r));
    let closed = false;
    const closing = other.close().then(() => (closed = true));
    // The server's own idle timeout is 10 s: both done well before it, close() did not wait for the client.
    await Promise.race([Promise.all([closedByServer, closing]), new Promise((r) => setTimeout(r, 5000))]);
    assert.ok(closed, 'close() returned while the client was still connected');
    assert.ok(idle.destroyed, 'the idle client was cut');
  });
});
