// The cluster's names inside member containers. Members run on the host's
// network, so they would resolve names with the host's resolver, which knows
// nothing of the cluster domain unless the node's DNS setup forwards it to
// firecampd's embedded server. Instead every member container gets this
// file as its /etc/hosts: every member name and alias (primary.<service>…)
// with its current address, rewritten from the controldb's DNS records as
// they change. It is rewritten in place, never replaced, so that the bind
// mount in running containers sees each new version.
//
// It also names the host itself, as the host's own /etc/hosts would: members
// share the host's hostname, and a JVM looks it up (RMI does, for every
// nodetool call). Left to DNS, that lookup waits for a resolver that may
// never answer: 10 s on each nodetool call.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import type { ControlDb } from '../controldb/controldb.ts';
import { DNS_PREFIX } from './providers/embedded-dns.ts';

export class HostsFile {
  private last = '';
  private cancel?: () => void;

  constructor(
    private readonly db: ControlDb,
    readonly path: string,
    /** The node's own address: its hostname resolves to it (to 127.0.1.1, Debian's way, when the node is reached by name). */
    private readonly nodeAddress: string,
  ) {}

  start(): void {
    this.write();
    this.cancel = this.db.watch(DNS_PREFIX, true, 0, () => this.write());
  }

  stop(): void {
    this.cancel?.();
  }

  private write(): void {
    const records = this.db.store.range({ key: DNS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => `${kv.value}\t${kv.key.slice(DNS_PREFIX.length)}`);
    const text = [
      "# Written by firecampd: the cluster's names, as its DNS records say now.",
      '127.0.0.1\tlocalhost',
      '::1\tlocalhost ip6-localhost ip6-loopback',
      `${net.isIP(this.nodeAddress) ? this.nodeAddress : '127.0.1.1'}\t${os.hostname()}`,
      ...records,
      '',
    ].join('\n');
    if (text === this.last) return;
    // In place (one write of a few KiB), so that containers that bind it see the change.
    fs.writeFileSync(this.path, text, { mode: 0o644, flag: fs.existsSync(this.path) ? 'r+' : 'w' });
    fs.truncateSync(this.path, Buffer.byteLength(text));
    this.last = text;
  }
}
