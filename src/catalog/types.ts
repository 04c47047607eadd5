// Services as kept in the controldb, and the interface every service type
// implements. All of a service's state is in its record and its members'
// records, so a new leader carries on where the old one stopped.
import { z } from 'zod';
import type { MemberSpec } from '../agent/members.ts';

export const SERVICES_PREFIX = '/services/';
export const serviceKey = (name: string) => `${SERVICES_PREFIX}${name}`;

export type ServiceStatus = 'CREATING' | 'INITIALIZING' | 'ACTIVE' | 'SCALING' | 'DELETING' | 'FAILED';

export const serviceSpecSchema = z
  .object({
    type: z.enum(['redis']),
    name: z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'must start with a letter; lower-case letters, digits and "-", at most 31'),
    replicas: z.number().int().min(1).max(32),
    image: z.string().min(1).optional(),
    memoryMiB: z.number().int().min(16).max(1 << 20).optional(),
    cpus: z.number().positive().max(256).optional(),
    volumeSizeMiB: z.number().int().min(16).max(16 << 20).optional(),
    /** Extra lines appended to the service's config file. */
    config: z.string().max(16_384).optional(),
  })
  .strict();

export type ServiceSpec = z.infer<typeof serviceSpecSchema>;

export interface Service {
  spec: ServiceSpec;
  status: ServiceStatus;
  message: string;
  created_at: string;
  updated_at: string;
}

/** What the catalog needs from a node to place members on it. */
export interface PlacementNode {
  id: string;
  name: string;
  zone: string;
  addr: string;
}

export interface MemberContext {
  domain: string;
  /** The static IP of each member by index, where it has one. */
  ips: (string | undefined)[];
}

/** One module per service type. */
export interface ServiceType {
  readonly image: string;
  /** The members' specs, without node and epoch (the catalog decides those). */
  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[];
}
