// What the catalog asks of agents, and what agents report back, as kept in
// the controldb. A member's assignment names a node and an epoch; the epoch
// grows each time the member moves and fences every step of the move.
import { z } from 'zod';
import { SECRET_PREFIX } from '../security/tokens.ts';

export const MEMBERS_PREFIX = '/members/';
export const CLAIMS_PREFIX = '/claims/';
export const STATUS_PREFIX = '/status/';
export const ALIVE_PREFIX = '/_cluster/alive/';

const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and "-"');

const volumeSchema = z.object({ id: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/), sizeMiB: z.number().int().positive(), mountPath: z.string().startsWith('/') });
/** A path inside a volume. */
const relativePath = z
  .string()
  .regex(/^[^/].*$/)
  .refine((p) => !p.split('/').includes('..'));

export const memberSpecSchema = z
  .object({
    service: name,
    name,
    /** The node that should run the member. */
    node: z.string().min(1),
    epoch: z.number().int().positive(),
    image: z.string().min(1),
    command: z.array(z.string()).optional(),
    env: z.record(z.string(), z.string()).optional(),
    volume: volumeSchema.optional(),
    /** A second volume for a write-ahead log, commit log or journal; moved and fenced with the data volume. */
    journal: volumeSchema.optional(),
    /** The user the container runs as ("uid:gid", numbers as in the image); the volumes and the files written into them are given to it. */
    user: z
      .string()
      .regex(/^\d+:\d+$/, 'uid:gid')
      .optional(),
    /** The signal that stops the service cleanly (PostgreSQL: SIGINT, its fast shutdown); Docker's default is SIGTERM. */
    stopSignal: z
      .string()
      .regex(/^SIG[A-Z0-9]+$/)
      .optional(),
    /** A static IP that moves with the member. */
    ip: z.ipv4().optional(),
    /** The main port, announced in the service's SRV records. */
    port: z.number().int().min(1).max(65535).optional(),
    /** Every port the member listens on: without a static IP it answers on the node's addresses, and the firewall guards these. */
    ports: z.array(z.number().int().min(1).max(65535)).optional(),
    /** Fully qualified DNS name, without the trailing dot. */
    dnsName: z.string().optional(),
    /** Written into the volume before the container starts; paths are relative to the volume. */
    configFiles: z.array(z.object({ path: relativePath, content: z.string(), mode: z.number().int().optional() })).optional(),
    /**
     * Files written into the data volume (mode 0600, owned by the member's user) from the service's
     * generated secrets: each {{name}} in the template is replaced by the secret of that name, which
     * the agent reads from its own replica. The secrets themselves never appear in a member's spec.
     */
    secretFiles: z.array(z.object({ path: relativePath, template: z.string() })).optional(),
    /** Secrets of services this one needs, for its secret files: {{as}} is the secret `secret` of service `service` (Kafka Connect: the Kafka login). */
    borrowedSecrets: z.array(z.object({ as: z.string().regex(/^[a-zA-Z0-9_-]+$/), service: name, secret: z.string().min(1) })).optional(),
    /** The service's rollout generation this spec was made for (upgrade, restart, config change). */
    generation: z.number().int().nonnegative().optional(),
    resources: z.object({ cpus: z.number().positive().optional(), memoryMiB: z.number().int().positive().optional() }).optional(),
    /** Process limits of the container (Docker's --ulimit), where the service checks them at start (Elasticsearch: 65535 open files). */
    ulimits: z
      .object({ nofile: z.object({ soft: z.number().int().positive(), hard: z.number().int().positive() }).refine((l) => l.soft <= l.hard, 'soft ≤ hard') })
      .partial()
      .strict()
      .optional(),
    /**
     * The member serves TLS: before its container starts, the agent writes a key (0600, the member's user's) and a
     * certificate signed by the cluster CA for its DNS name, address and `names` into `dir` of its data volume, with
     * the CA beside them (server.key, server.crt, ca.crt), and renews them at a start once due.
     */
    tls: z
      .object({
        dir: relativePath,
        /** Names clients dial it by besides its own (primary.<service>.<domain>: any member may be the primary). */
        names: z.array(z.string().min(1)).optional(),
        /** How long a certificate lasts (default 365 days); a short one lets a test see renewals. */
        lifetimeHours: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    /**
     * Where Prometheus scrapes the member: `port` (and `path`, /metrics unless given) on the member's address. The
     * service's own endpoint (ZooKeeper's), or an `exporter`: a second container the agent runs beside the member's,
     * from the upstream exporter's image, on the same network (the host's) and with the member's volumes mounted
     * read-only (for the secrets and CA it reads from them), started after the member and stopped before it.
     */
    metrics: z
      .object({
        port: z.number().int().min(1).max(65535),
        path: z.string().startsWith('/').optional(),
        exporter: z
          .object({
            image: z.string().min(1),
            /** Its whole command line (the image's entrypoint replaced). */
            command: z.array(z.string()).optional(),
            env: z.record(z.string(), z.string()).optional(),
          })
          .strict()
          .optional(),
        /** A Java agent the service's JVM loads to serve its metrics (the JMX exporter): the node's copy of the jar, written at `path` of the volume by the files step. */
        javaAgent: z
          .object({ file: z.string().regex(/^[A-Za-z0-9._-]+\.jar$/), url: z.string().url(), sha256: z.string().regex(/^[0-9a-f]{64}$/), path: relativePath })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** Docker's log driver for the member's container (HostConfig.LogConfig); Docker's default when absent. */
    logging: z
      .object({ driver: z.string().min(1), options: z.record(z.string(), z.string()).optional() })
      .strict()
      .optional(),
    /** How many times the catalog moved the member off a node whose lease expired, and when it last did. */
    moves: z.number().int().nonnegative().optional(),
    movedAt: z.string().optional(),
    /** A command Docker runs in the container every second; its exit status is the member's health. */
    healthCheck: z.array(z.string()).min(1).optional(),
    /** The zone the member must stay in, where its volume or address is zonal (EBS, an AWS subnet). */
    zone: z.string().optional(),
    /**
     * Before its first start, the member's volume is filled from a backup: each part fetched from the target, checked,
     * opened with the key and written at its path (a tar unpacked there); the archived log's files; then the files;
     * then a marker, so that this happens once.
     */
    restore: z
      .object({
        backup: z.string(),
        target: z.string(),
        keyId: z.string(),
        parts: z.array(z.object({ name: z.string(), key: z.string(), sha256: z.string(), path: relativePath, unpack: z.literal('tar').optional() }).strict()),
        files: z.array(z.object({ path: relativePath, content: z.string() }).strict()),
        /** The archived log's objects (under the target), fetched into a directory of the volume, each as its own name. */
        archive: z
          .object({ path: relativePath, objects: z.array(z.object({ key: z.string(), name: z.string().regex(/^[A-Za-z0-9._-]+$/) }).strict()) })
          .strict()
          .optional(),
      })
      .strict()
      .optional(),
    /** The service is stopped: no node runs the member, which keeps its volume, address and name. */
    stopped: z.boolean().optional(),
  })
  .strict();

export type MemberSpec = z.infer<typeof memberSpecSchema>;

/** Who holds a member now; attached to the holder's liveness lease. */
export interface Claim {
  node: string;
  epoch: number;
}

export type MemberState = 'starting' | 'running' | 'exited' | 'failed' | 'stopping';

export interface MemberStatus {
  node: string;
  epoch: number;
  state: MemberState;
  /** From the container's health check, where the member has one. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  container?: string;
  ip?: string;
  message?: string;
  since: string;
  /** When the certificate the member serves ends (a member that serves TLS): the catalog renews it in time. */
  certificateEnds?: string;
}

export const memberKey = (service: string, member: string) => `${MEMBERS_PREFIX}${service}/${member}`;
export const claimKey = (service: string, member: string) => `${CLAIMS_PREFIX}${service}/${member}`;
export const statusKey = (service: string, member: string) => `${STATUS_PREFIX}${service}/${member}`;
/** A member's index in its service: the N of "<service>-N". */
export const memberIndex = (m: { name: string }) => Number(m.name.slice(m.name.lastIndexOf('-') + 1));
/** The Docker container of a member: one name per member, whichever node runs it. */
export const containerName = (m: { service: string; name: string }) => `firecampd-${m.service}-${m.name}`;
/** The container of a member's metrics exporter, beside the member's own. */
export const exporterName = (m: { service: string; name: string }) => `${containerName(m)}-metrics`;

/** The member's user as numbers, for the files and volume roots given to it. */
export function ownerOf(spec: MemberSpec): { uid: number; gid: number } | undefined {
  if (!spec.user) return undefined;
  const [uid, gid] = spec.user.split(':').map(Number);
  return { uid, gid };
}

/** A service's generated secrets (passwords, keyfiles), by name: under the prefix the KV API never serves. */
export const serviceSecretsKey = (service: string) => `${SECRET_PREFIX}services/${service}`;

/** A secret file's content: each {{name}} replaced by the secret of that name. Throws on a name the service lacks. */
export function fillSecrets(template: string, secrets: Record<string, string>): string {
  return template.replace(/\{\{([a-zA-Z0-9_-]+)\}\}/g, (_, name: string) => {
    const value = secrets[name];
    if (value === undefined) throw new Error(`the service has no secret named ${name}`);
    return value;
  });
}
