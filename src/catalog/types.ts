// Services as kept in the controldb, and the interface every service type
// implements. All of a service's state is in its record and its members'
// records, so a new leader carries on where the old one stopped.
import { z } from 'zod';
import type { MemberSpec } from '../agent/members.ts';
import type { Logger } from '../log.ts';
import { UserError } from '../errors.ts';

export const SERVICES_PREFIX = '/services/';
export const serviceKey = (name: string) => `${SERVICES_PREFIX}${name}`;
export const noSuchService = (name: string) => new UserError(`no service named ${name} (see "firecampd service list")`, 404, 'not_found');

export type ServiceStatus = 'CREATING' | 'INITIALIZING' | 'ACTIVE' | 'SCALING' | 'UPGRADING' | 'STOPPING' | 'STOPPED' | 'DELETING' | 'FAILED';

const labelName = z.string().regex(/^[a-zA-Z0-9._/-]{1,63}$/, 'label names hold letters, digits, ".", "_", "/" and "-"');

export const serviceSpecSchema = z
  .object({
    type: z.enum(['redis']),
    name: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'must start with a letter; lower-case letters, digits and "-", at most 31'),
    /** Members in all; a type may work it out from its own options (Redis cluster: shards × (1 + replicas per shard)). */
    replicas: z.number().int().min(1).max(64).optional(),
    image: z.string().min(1).optional(),
    memoryMiB: z
      .number()
      .int()
      .min(16)
      .max(1 << 20)
      .optional(),
    cpus: z.number().positive().max(256).optional(),
    volumeSizeMiB: z
      .number()
      .int()
      .min(16)
      .max(16 << 20)
      .optional(),
    /** Extra lines appended to the service's config file. */
    config: z.string().max(16_384).optional(),
    /** Redis cluster mode: shards × (a master and its replicas). */
    redis: z
      .object({
        shards: z.number().int().min(3, 'a Redis cluster needs at least 3 shards (masters)').max(64),
        replicasPerShard: z.number().int().min(0).max(5),
      })
      .strict()
      .optional(),
    /** Only nodes that carry every one of these labels (firecampd --labels) may run the members. */
    placement: z
      .object({ labels: z.record(labelName, z.string().max(255)) })
      .strict()
      .optional(),
  })
  .strict();

export type ServiceSpecInput = z.infer<typeof serviceSpecSchema>;
/** A spec once its type has completed it: the member count is known. */
export type ServiceSpec = ServiceSpecInput & { replicas: number };

export interface Service {
  spec: ServiceSpec;
  status: ServiceStatus;
  message: string;
  /** The type's one-time initialization (e.g. forming the Redis cluster) is done. */
  initialized?: boolean;
  created_at: string;
  updated_at: string;
}

export interface MemberContext {
  domain: string;
  /** The static IP of each member by index, where it has one. */
  ips: (string | undefined)[];
}

/** A placed member and the address the leader reaches it at. */
export interface PlacedMember {
  spec: MemberSpec;
  host: string;
}

/** What a type decides for the next step of a rolling upgrade. */
export type UpgradeStep = { restart: string } | { wait: string };

/** One module per service type. */
export interface ServiceType {
  readonly image: string;
  /** Check and complete a user's spec; throws UserError with what to change. */
  normalize(spec: ServiceSpecInput): ServiceSpec;
  /** Why the spec cannot run without static IPs, or undefined if it can. */
  needsStaticIps(spec: ServiceSpec): string | undefined;
  /** Why the service cannot change to `replicas` members, or undefined if it can. */
  cannotScale(spec: ServiceSpec, replicas: number): string | undefined;
  /** The members' specs, without node and epoch (the catalog decides those). */
  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[];
  /** Members of one group (a shard) are kept apart: on other nodes, then in other zones. */
  group(spec: ServiceSpec, index: number): number;
  /**
   * Bring running members together (e.g. form the Redis cluster). Returns
   * what it still waits for, or undefined when done. Runs again on every
   * pass until done, also on a new leader: each step must be idempotent.
   */
  initialize(spec: ServiceSpec, members: PlacedMember[], log: Logger): Promise<string | undefined>;
  /** Why a running member does not serve yet, or undefined if it does. */
  notReady(spec: ServiceSpec, member: PlacedMember): Promise<string | undefined>;
  /** The next step of a rolling upgrade to `image`, given that every member serves. */
  upgradeStep(spec: ServiceSpec, members: PlacedMember[], image: string, log: Logger): Promise<UpgradeStep>;
}
