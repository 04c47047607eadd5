// Redis: one primary (member 0) and replicas that follow it by its static IP
// (or its DNS name without static IPs), so that they find it again wherever
// it runs. Append-only persistence on the
// member's volume: data survives a move. (Cluster mode is not built yet.)
import type { MemberSpec } from '../agent/members.ts';
import type { MemberContext, ServiceSpec, ServiceType } from './types.ts';

export const REDIS_PORT = 6379;

export const redis: ServiceType = {
  image: 'firecampd/redis:7',
  members(spec: ServiceSpec, { domain, ips }: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const primary = ips[0] ?? `${spec.name}-0.${spec.name}.${domain}`;
    return Array.from({ length: spec.replicas }, (_, i) => {
      const name = `${spec.name}-${i}`;
      const conf = [
        `port ${REDIS_PORT}`,
        'bind 0.0.0.0',
        'protected-mode no',
        'dir /data',
        'appendonly yes',
        'appendfsync everysec',
        ...(spec.memoryMiB ? [`maxmemory ${Math.floor(spec.memoryMiB * 0.8)}mb`] : []),
        ...(i > 0 ? [`replicaof ${primary} ${REDIS_PORT}`] : []),
        ...(spec.config ? [spec.config] : []),
      ].join('\n');
      return {
        service: spec.name,
        name,
        image: spec.image ?? redis.image,
        command: ['redis-server', '/data/redis.conf'],
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? 256, mountPath: '/data' },
        dnsName: `${name}.${spec.name}.${domain}`,
        ...(ips[i] ? { ip: ips[i] } : {}),
        port: REDIS_PORT,
        configFiles: [{ path: 'redis.conf', content: conf + '\n' }],
        ...(spec.memoryMiB || spec.cpus ? { resources: { ...(spec.memoryMiB ? { memoryMiB: spec.memoryMiB } : {}), ...(spec.cpus ? { cpus: spec.cpus } : {}) } } : {}),
      };
    });
  },
};
