// The daemon's configuration: flags, FIRECAMPD_* environment variables and an
// optional JSON config file are merged by yargs; this module validates the
// result and turns it into one typed object.
import { DEFAULT_LOG_BOUNDS, type LogBounds } from './agent/logs/files.ts';
import { DEFAULT_EVENT_BOUNDS } from './events/retention.ts';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from './errors.ts';

export const DEFAULT_PORT = 27040;
export const DEFAULT_DNS_LISTEN = '127.0.0.1:5353';
/**
 * Seconds without a confirmed keepalive before a node's lease expires and its members move elsewhere. A node stops its
 * members a quarter second before that (src/agent/lease.ts): it rides out a pause, or the election after the leader's
 * death (0.5 to 1 s), of up to about 1.5 s. Slower hosts, or daemon restarts that take longer, want a larger TTL.
 */
export const DEFAULT_LEASE_TTL = 2;

export interface HostPort {
  host: string;
  port: number;
}

export interface NodeConfig {
  dataDir: string;
  bind: HostPort;
  advertise: HostPort;
  join: HostPort[];
  token?: string;
  zone: string;
  /** The region its zone is in (Cassandra's datacenter); members learn both from FIRECAMPD_REGION and FIRECAMPD_ZONE. */
  region: string;
  /** Operator's labels for placement, e.g. disk=ssd. */
  labels: Record<string, string>;
  dnsListen: HostPort;
  dockerHost?: string;
  name: string;
  /** Test-only fault: serve reads without ReadIndex. */
  unsafeStaleReads: boolean;
  /** Where member volumes live: a directory per volume in the data dir, loop images on shared storage, or EBS volumes. */
  volumes: { kind: 'local' } | { kind: 'loop'; dir: string } | { kind: 'aws-ebs' };
  /** How members' static IPs are brought up: not at all, on a local interface, or as AWS secondary IPs of that interface. */
  staticIps: { kind: 'none' } | { kind: 'local' | 'aws'; iface: string; prefix: number };
  /** Who else serves members' names: nobody (the embedded server alone), or a Route 53 hosted zone too. */
  dns: { kind: 'embedded' } | { kind: 'route53'; hostedZoneId: string };
  /** The cluster's DNS domain, served by every node's embedded DNS server. */
  dnsDomain: string;
  /** The node's liveness lease, in seconds. */
  leaseTtl: number;
  /** Static IPs the catalog (when this node leads) gives members, in order. */
  ipPool: string[];
  /** The event history's bounds, kept by the leader: at most this many events, none older than this many hours. */
  eventsMax: number;
  eventsMaxAgeHours: number;
  /** The bounds of each member's output kept on its volume (src/agent/logs/). */
  memberLogs: LogBounds;
  /** Where the Java agents members load are kept (src/agent/java-agents.ts). */
  javaAgentsDir: string;
}

export function defaultDataDir(): string {
  if (process.getuid?.() === 0) return '/var/lib/firecampd';
  return path.join(os.homedir(), '.local', 'share', 'firecampd');
}

/** Parse "host:port", "host" or ":port"; IPv6 hosts go in brackets. */
export function parseHostPort(value: string, defaultPort: number, what: string, allowZero = false): HostPort {
  const v = value.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(v);
  if (!m) throw new UserError(`${what}: "${value}" is not host:port`);
  const host = m[1] ?? m[2] ?? '';
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new UserError(`${what}: port in "${value}" must be ${allowZero ? 0 : 1}-65535`);
  }
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

/** The address other nodes should use when the operator did not say: the first non-internal IPv4. */
function guessAdvertiseHost(bindHost: string): string {
  if (bindHost && bindHost !== '0.0.0.0' && bindHost !== '::') return bindHost;
  for (const addrs of Object.values(os.networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

const rawSchema = z
  .object({
    dataDir: z.string().min(1).optional(),
    bind: z.string().optional(),
    advertise: z.string().optional(),
    join: z.union([z.string(), z.array(z.string())]).optional(),
    token: z.string().min(1).optional(),
    zone: z
      .string()
      .regex(/^[a-zA-Z0-9._-]+$/, 'zone may hold letters, digits, ".", "_" and "-"')
      .optional(),
    region: z
      .string()
      .regex(/^[a-zA-Z0-9._-]+$/, 'region may hold letters, digits, ".", "_" and "-"')
      .optional(),
    labels: z
      .union([z.string(), z.array(z.string())])
      .transform((v) => (Array.isArray(v) ? v : [v]).flatMap((x) => x.split(',')).filter((x) => x.trim() !== ''))
      .pipe(z.array(z.string().regex(/^[a-zA-Z0-9._/-]{1,63}=[^,]{0,255}$/, 'labels are NAME=VALUE, comma-separated, e.g. disk=ssd,rack=r1')))
      .optional(),
    dnsListen: z.string().optional(),
    dockerHost: z.string().optional(),
    name: z
      .string()
      .regex(/^[a-zA-Z0-9._-]+$/, 'name may hold letters, digits, ".", "_" and "-"')
      .optional(),
    unsafeStaleReads: z.boolean().optional(),
    volumes: z
      .string()
      .regex(/^(local|loop:\/.+|aws-ebs)$/, 'must be "local", "loop:/shared/dir" or "aws-ebs"')
      .optional(),
    staticIps: z
      .string()
      .regex(/^(none|(local|aws):[a-zA-Z0-9._-]+(\/\d{1,2})?)$/, 'must be "none", "local:IFACE[/PREFIX]" or "aws:IFACE[/PREFIX]"')
      .optional(),
    dns: z
      .string()
      .regex(/^(embedded|route53:[A-Z0-9]{1,32})$/, 'must be "embedded" or "route53:HOSTED_ZONE_ID"')
      .optional(),
    dnsDomain: z
      .string()
      .regex(/^([a-z0-9-]+\.)*[a-z0-9-]+$/, 'must be a domain name such as firecamp.local')
      .optional(),
    leaseTtl: z.number().int().min(2).max(300).optional(),
    eventsMax: z.number().int().min(100).max(10_000_000).optional(),
    eventsMaxAgeHours: z.number().int().min(1).max(87_600).optional(),
    memberLogMib: z.number().int().min(1).max(4096).optional(),
    javaAgentsDir: z.string().min(1).optional(),
    memberLogMaxAgeHours: z.number().int().min(1).max(87_600).optional(),
    ipPool: z
      .string()
      .regex(/^\d+\.\d+\.\d+\.\d+-\d+\.\d+\.\d+\.\d+$/, 'must be FIRST-LAST, e.g. 10.0.0.200-10.0.0.250')
      .optional(),
  })
  .passthrough();

export type RawNodeOptions = z.input<typeof rawSchema>;

export function resolveNodeConfig(raw: RawNodeOptions): NodeConfig {
  const parsed = rawSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`--${kebab(String(issue.path[0] ?? ''))}: ${issue.message}`);
  }
  const o = parsed.data;
  const bind = parseHostPort(o.bind ?? `0.0.0.0:${DEFAULT_PORT}`, DEFAULT_PORT, '--bind', true);
  if (!bind.host) bind.host = '0.0.0.0';
  const advertise = o.advertise
    ? parseHostPort(o.advertise, bind.port || DEFAULT_PORT, '--advertise')
    : { host: guessAdvertiseHost(bind.host), port: bind.port };
  if (!advertise.host || advertise.host === '0.0.0.0' || advertise.host === '::') {
    throw new UserError(`--advertise: "${o.advertise}" must be an address other nodes can reach`);
  }
  const joinList = (Array.isArray(o.join) ? o.join : o.join ? [o.join] : [])
    .flatMap((j) => j.split(','))
    .filter((j) => j.trim() !== '')
    .map((j) => parseHostPort(j, DEFAULT_PORT, '--join'));
  const dnsListen = parseHostPort(o.dnsListen ?? DEFAULT_DNS_LISTEN, 5353, '--dns-listen', true);
  const dataDir = path.resolve(o.dataDir ?? defaultDataDir());
  return {
    dataDir,
    bind,
    advertise,
    join: joinList,
    token: o.token,
    zone: o.zone ?? 'default',
    region: o.region ?? 'default',
    labels: Object.fromEntries((o.labels ?? []).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
    dnsListen,
    dockerHost: o.dockerHost,
    name: o.name ?? os.hostname(),
    unsafeStaleReads: o.unsafeStaleReads ?? false,
    volumes: o.volumes?.startsWith('loop:')
      ? { kind: 'loop', dir: path.resolve(o.volumes.slice(5)) }
      : o.volumes === 'aws-ebs'
        ? { kind: 'aws-ebs' }
        : { kind: 'local' },
    staticIps: parseStaticIps(o.staticIps),
    dns: o.dns?.startsWith('route53:') ? { kind: 'route53', hostedZoneId: o.dns.slice('route53:'.length) } : { kind: 'embedded' },
    dnsDomain: o.dnsDomain ?? 'firecamp.local',
    leaseTtl: o.leaseTtl ?? DEFAULT_LEASE_TTL,
    ipPool: o.ipPool ? ipRange(o.ipPool) : [],
    eventsMax: o.eventsMax ?? DEFAULT_EVENT_BOUNDS.maxEvents,
    eventsMaxAgeHours: o.eventsMaxAgeHours ?? DEFAULT_EVENT_BOUNDS.maxAgeMs / 3_600_000,
    javaAgentsDir: path.resolve(o.javaAgentsDir ?? path.join(dataDir, 'java-agents')),
    memberLogs: {
      ...DEFAULT_LOG_BOUNDS,
      ...(o.memberLogMib ? { maxBytes: o.memberLogMib << 20 } : {}),
      ...(o.memberLogMaxAgeHours ? { maxAgeMs: o.memberLogMaxAgeHours * 3_600_000 } : {}),
    },
  };
}

function ipRange(v: string): string[] {
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  const [first, last] = v.split('-').map(toInt) as [number, number];
  if (last < first || last - first > 65_535) throw new UserError(`--ip-pool: "${v}" must run from a lower to a higher address, at most 65536 of them`);
  return Array.from({ length: last - first + 1 }, (_, i) => [24, 16, 8, 0].map((s) => ((first + i) >>> s) & 255).join('.'));
}

export function parseStaticIps(v: string | undefined): NodeConfig['staticIps'] {
  if (!v || v === 'none') return { kind: 'none' };
  const kind = v.startsWith('aws:') ? 'aws' : 'local';
  const [iface, prefix] = v.slice(kind.length + 1).split('/');
  return { kind, iface: iface, prefix: prefix ? Number(prefix) : 24 };
}

/** Whether members must stay in the zone they were first placed in: EBS volumes and a subnet's addresses are zonal. */
export function zonal(c: Pick<NodeConfig, 'volumes' | 'staticIps'>): boolean {
  return c.volumes.kind === 'aws-ebs' || c.staticIps.kind === 'aws';
}

function kebab(s: string): string {
  return s.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}
