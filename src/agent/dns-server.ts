// The embedded authoritative DNS server for the cluster domain, on UDP and
// TCP. It answers from a lookup function (the node's controldb replica): A
// records for members, SRV for services, NXDOMAIN for unknown names in the
// zone and REFUSED outside it. TTLs are short because members move.
// dns-packet does the wire format.
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Logger } from '../log.ts';

export interface DnsAnswer {
  a?: string[];
  srv?: { target: string; port: number }[];
}

export interface DnsServerOptions {
  zone: string;
  lookup: (name: string) => DnsAnswer | undefined;
  ttl?: number;
  log: Logger;
}

const UDP_LIMIT = 512;
// dns-packet takes the response code in the low four bits of the flags.
const RCODE = { NOERROR: 0, NXDOMAIN: 3, REFUSED: 5 } as const;

export class DnsServer {
  private udp?: dgram.Socket;
  private tcp?: net.Server;
  /** Open TCP clients, cut on close so that an idle one does not hold the daemon's exit. */
  private readonly tcpClients = new Set<net.Socket>();
  private readonly zone: string;
  private readonly ttl: number;

  constructor(private readonly opts: DnsServerOptions) {
    this.zone = opts.zone.toLowerCase().replace(/\.$/, '');
    this.ttl = opts.ttl ?? 5;
  }

  async listen(host: string, port: number): Promise<number> {
    const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, host, () => resolve());
    });
    udp.on('message', (msg, rinfo) => {
      const res = this.answer(msg, true);
      if (res) udp.send(res, rinfo.port, rinfo.address);
    });
    udp.on('error', (err) => this.opts.log.warn({ err: err.message }, 'DNS UDP socket error'));
    this.udp = udp;
    const bound = udp.address().port;
    const tcp = net.createServer((socket) => this.serveTcp(socket));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(bound, host, () => resolve());
      });
    } catch (err) {
      udp.close();
      this.udp = undefined;
      throw err;
    }
    this.tcp = tcp;
    return bound;
  }

  private serveTcp(socket: net.Socket): void {
    this.tcpClients.add(socket);
    socket.once('close', () => this.tcpClients.delete(socket));
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      // Each message is preceded by its two-byte length; several may share a connection.
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const res = this.answer(buf.subarray(2, 2 + len), false);
        buf = buf.subarray(2 + len);
        if (!res) {
          socket.destroy();
          return;
        }
        const framed = Buffer.alloc(2 + res.length);
        framed.writeUInt16BE(res.length, 0);
        res.copy(framed, 2);
        socket.write(framed);
      }
      if (buf.length > 2 + 65535) socket.destroy();
    });
  }

  /** The response to one query, or undefined for a packet not worth answering. */
  answer(msg: Buffer, udp: boolean): Buffer | undefined {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (q.type !== 'query' || !question) return undefined;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const base = { type: 'response' as const, id: q.id, questions: [question] };
    if (name !== this.zone && !name.endsWith(`.${this.zone}`)) {
      return dnsPacket.encode({ ...base, flags: (dnsPacket.RECURSION_DESIRED & (q.flags ?? 0)) | RCODE.REFUSED });
    }
    const found = this.opts.lookup(name);
    const answers: dnsPacket.Answer[] = [];
    if (question.type === 'A' || (question.type as string) === 'ANY') {
      for (const ip of found?.a ?? []) answers.push({ type: 'A', name: question.name, ttl: this.ttl, class: 'IN', data: ip });
    }
    if (question.type === 'SRV' || (question.type as string) === 'ANY') {
      for (const s of found?.srv ?? []) {
        answers.push({ type: 'SRV', name: question.name, ttl: this.ttl, class: 'IN', data: { target: s.target, port: s.port, priority: 0, weight: 10 } });
      }
    }
    if (name === this.zone && (question.type === 'SOA' || question.type === 'NS')) {
      answers.push(question.type === 'SOA' ? this.soa() : { type: 'NS', name: this.zone, ttl: this.ttl, class: 'IN', data: `ns.${this.zone}` });
    }
    const known = found !== undefined || name === this.zone;
    const res: dnsPacket.Packet = {
      ...base,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? RCODE.NOERROR : RCODE.NXDOMAIN),
      answers,
      // An empty answer carries the zone's SOA, whose minimum TTL bounds negative caching.
      authorities: answers.length === 0 ? [this.soa()] : [],
    };
    let out = dnsPacket.encode(res);
    if (udp && out.length > UDP_LIMIT) {
      out = dnsPacket.encode({ ...res, flags: (res.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [] });
    }
    return out;
  }

  private soa(): dnsPacket.Answer {
    return {
      type: 'SOA',
      name: this.zone,
      ttl: this.ttl,
      class: 'IN',
      data: { mname: `ns.${this.zone}`, rname: `hostmaster.${this.zone}`, serial: 1, refresh: 60, retry: 10, expire: 600, minimum: this.ttl },
    };
  }

  async close(): Promise<void> {
    this.udp?.close();
    for (const socket of this.tcpClients) socket.destroy();
    await new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r()));
  }
}
