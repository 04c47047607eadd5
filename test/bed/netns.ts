// Network plumbing for the multi-host test bed: one network namespace per
// host, joined by a bridge in the root namespace, and iptables inside each
// namespace for partitions. Everything is named with one prefix so that a
// crashed run's leftovers can be found and removed.
import { execFileSync } from 'node:child_process';

export const PREFIX = 'fcb';

export function sh(cmd: string, args: string[], opts: { ignoreErrors?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (opts.ignoreErrors) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export function requireTools(): void {
  for (const tool of ['ip', 'iptables', 'nsenter']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`the test bed needs ${tool}: apt-get install iproute2 iptables util-linux`);
    }
  }
  if (process.getuid?.() !== 0) throw new Error('the test bed needs root (network namespaces)');
}

export interface Network {
  bridge: string;
  gateway: string;
  hosts: { ns: string; ip: string; veth: string }[];
}

/** Remove every namespace and bridge left by an earlier run that died before cleaning up. */
export function removeLeftovers(): void {
  for (const line of sh('ip', ['netns', 'list'], { ignoreErrors: true }).split('\n')) {
    const ns = line.split(' ')[0];
    if (!ns?.startsWith(PREFIX)) continue;
    // A process left in it by an earlier run that was killed (a test's Prometheus) would keep it alive.
    const pids = sh('ip', ['netns', 'pids', ns], { ignoreErrors: true }).split('\n').filter(Boolean);
    if (pids.length > 0) sh('kill', ['-9', ...pids], { ignoreErrors: true });
    sh('ip', ['netns', 'del', ns], { ignoreErrors: true });
  }
  for (const line of sh('ip', ['-o', 'link', 'show'], { ignoreErrors: true }).split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name?.startsWith(PREFIX)) {
      sh('iptables', ['-D', 'FORWARD', '-i', name, '-o', name, '-j', 'ACCEPT'], { ignoreErrors: true });
      sh('ip', ['link', 'del', name], { ignoreErrors: true });
    }
  }
}

/** A bridge with the gateway address and `count` namespaces at base+1, base+2, … */
export function createNetwork(count: number, subnet = '10.77.0', firstHost = 11, names?: string[]): Network {
  const bridge = `${PREFIX}br0`;
  const gateway = `${subnet}.1`;
  sh('ip', ['link', 'add', bridge, 'type', 'bridge']);
  sh('ip', ['addr', 'add', `${gateway}/24`, 'dev', bridge]);
  sh('ip', ['link', 'set', bridge, 'up']);
  // Bridged packets pass the host's FORWARD chain; a Docker host drops them by default.
  sh('iptables', ['-I', 'FORWARD', '-i', bridge, '-o', bridge, '-j', 'ACCEPT']);
  const hosts: Network['hosts'] = [];
  for (let i = 0; i < count; i++) {
    const ns = `${PREFIX}-${names?.[i] ?? `n${i + 1}`}`;
    const veth = `${PREFIX}v${i}`;
    const ip = `${subnet}.${firstHost + i}`;
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
    sh('ip', ['link', 'set', `${veth}p`, 'netns', ns]);
    sh('ip', ['-n', ns, 'link', 'set', `${veth}p`, 'name', 'eth0']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', gateway]);
    sh('ip', ['link', 'set', veth, 'master', bridge]);
    sh('ip', ['link', 'set', veth, 'up']);
    hosts.push({ ns, ip, veth });
  }
  return { bridge, gateway, hosts };
}

export function destroyNetwork(net: Network): void {
  for (const h of net.hosts) {
    // Deleting a veth removes both ends at once. Left to `netns del`, the pair goes only when the
    // kernel frees the namespace, later and asynchronously, and not at all while a process still
    // holds it: CI saw host ends outlive the bed.
    sh('ip', ['link', 'del', h.veth], { ignoreErrors: true });
    sh('ip', ['netns', 'del', h.ns], { ignoreErrors: true });
  }
  sh('iptables', ['-D', 'FORWARD', '-i', net.bridge, '-o', net.bridge, '-j', 'ACCEPT'], { ignoreErrors: true });
  sh('ip', ['link', 'del', net.bridge], { ignoreErrors: true });
}

/** Drop traffic from `from` to `to` (inside `from`'s namespace: it goes with the namespace). */
export function block(fromNs: string, toIp: string): void {
  sh('ip', ['netns', 'exec', fromNs, 'iptables', '-A', 'OUTPUT', '-d', toIp, '-j', 'DROP']);
}

export function unblockAll(ns: string): void {
  sh('ip', ['netns', 'exec', ns, 'iptables', '-F', 'OUTPUT'], { ignoreErrors: true });
  sh('ip', ['netns', 'exec', ns, 'iptables', '-F', 'INPUT'], { ignoreErrors: true });
}
