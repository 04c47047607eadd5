// What the catalog asks of agents, and what agents report back, as kept in
// the controldb. A member's assignment names a node and an epoch; the epoch
// grows each time the member moves and fences every step of the move.
import { z } from 'zod';

export const MEMBERS_PREFIX = '/members/';
export const CLAIMS_PREFIX = '/claims/';
export const STATUS_PREFIX = '/status/';
export const ALIVE_PREFIX = '/_cluster/alive/';

const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and "-"');

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
    volume: z.object({ id: z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/), sizeMiB: z.number().int().positive(), mountPath: z.string().startsWith('/') }).optional(),
    /** A static IP that moves with the member. */
    ip: z.ipv4().optional(),
    /** The main port, announced in the service's SRV records. */
    port: z.number().int().min(1).max(65535).optional(),
    /** Fully qualified DNS name, without the trailing dot. */
    dnsName: z.string().optional(),
    /** Written into the volume before the container starts; paths are relative to the volume. */
    configFiles: z
      .array(
        z.object({
          path: z
            .string()
            .regex(/^[^/].*$/)
            .refine((p) => !p.split('/').includes('..')),
          content: z.string(),
          mode: z.number().int().optional(),
        }),
      )
      .optional(),
    resources: z.object({ cpus: z.number().positive().optional(), memoryMiB: z.number().int().positive().optional() }).optional(),
    /** A command Docker runs in the container every second; its exit status is the member's health. */
    healthCheck: z.array(z.string()).min(1).optional(),
    /** The zone the member must stay in, where its volume or address is zonal (EBS, an AWS subnet). */
    zone: z.string().optional(),
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
}

export const memberKey = (service: string, member: string) => `${MEMBERS_PREFIX}${service}/${member}`;
export const claimKey = (service: string, member: string) => `${CLAIMS_PREFIX}${service}/${member}`;
export const statusKey = (service: string, member: string) => `${STATUS_PREFIX}${service}/${member}`;
/** A member's index in its service: the N of "<service>-N". */
export const memberIndex = (m: { name: string }) => Number(m.name.slice(m.name.lastIndexOf('-') + 1));
/** The Docker container of a member: one name per member, whichever node runs it. */
export const containerName = (m: { service: string; name: string }) => `firecampd-${m.service}-${m.name}`;
