// Static IPs on this node's interface: ip addr add, then gratuitous ARP so
// that neighbours (and the switch) learn the new place at once instead of
// when their ARP cache expires.
import { run } from '../../exec.ts';
import type { IpProvider } from './types.ts';

export class LocalIps implements IpProvider {
  readonly kind = 'local' as const;

  /** `prefix`: the subnet's prefix length, so the address routes like the interface's own. */
  constructor(
    private readonly iface: string,
    private readonly prefix = 24,
    private readonly onError: (err: Error) => void = () => {},
  ) {}

  async add(ip: string): Promise<void> {
    const shown = await run('ip', ['-o', 'addr', 'show', 'dev', this.iface]);
    if (!shown.includes(` ${ip}/`)) await run('ip', ['addr', 'add', `${ip}/${this.prefix}`, 'dev', this.iface]);
    // -U: unsolicited (gratuitous) ARP; -c 2: twice, a second apart, in case the first is lost.
    // Not awaited: the address works already, the announcement only hurries the neighbours.
    void run('arping', ['-U', '-c', '2', '-I', this.iface, ip], { okCodes: [1] }).catch((err: Error) => this.onError(err));
  }

  async remove(ip: string): Promise<void> {
    const shown = await run('ip', ['-o', 'addr', 'show', 'dev', this.iface]);
    if (shown.includes(` ${ip}/`)) await run('ip', ['addr', 'del', `${ip}/${this.prefix}`, 'dev', this.iface]);
  }
}

/** No static IPs: members are reached at their node's address. */
export class NoIps implements IpProvider {
  readonly kind = 'none' as const;
  async add(): Promise<void> {}
  async remove(): Promise<void> {}
}
