// Services as kept in the controldb, and the interface every service type
// implements. All of a service's state is in its record and its members'
// records, so a new leader carries on where the old one stopped.
import { z } from 'zod';
import type { MemberSpec } from '../agent/members.ts';
import type { Logger } from '../log.ts';
import type { MemberExec } from './member-exec.ts';
import { UserError } from '../errors.ts';

export const SERVICES_PREFIX = '/services/';
/** Each service's members' roles and lag, as the catalog last saw them. */
export const ROLES_PREFIX = '/roles/';
export const serviceKey = (name: string) => `${SERVICES_PREFIX}${name}`;
export const noSuchService = (name: string) => new UserError(`no service named ${name} (see "firecampd service list")`, 404, 'not_found');

export type ServiceStatus = 'CREATING' | 'INITIALIZING' | 'ACTIVE' | 'SCALING' | 'UPGRADING' | 'RESTARTING' | 'STOPPING' | 'STOPPED' | 'DELETING' | 'FAILED';

const labelName = z.string().regex(/^[a-zA-Z0-9._/-]{1,63}$/, 'label names hold letters, digits, ".", "_", "/" and "-"');

/** The service types by the name users give in --type (SERVICE_TYPES' keys); here so that the CLI offers them without loading the types' modules. */
export const SERVICE_TYPE_NAMES = ['redis', 'postgres', 'zookeeper', 'kafka', 'kafka-connect', 'cassandra', 'elasticsearch'] as const;

/** The kinds of service another may need (`--zookeeper NAME`, `--kafka NAME`): each is a type of its own. */
export const NEED_KINDS = ['zookeeper', 'kafka'] as const;
export type NeedKind = (typeof NEED_KINDS)[number];

const serviceName = z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'must start with a letter; lower-case letters, digits and "-", at most 31');

export const serviceSpecSchema = z
  .object({
    type: z.enum(SERVICE_TYPE_NAMES),
    name: serviceName,
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
    /** The JVM's heap (-Xmx and -Xms), for the types that run on one (ZooKeeper, Kafka, Kafka Connect, Cassandra, Elasticsearch). */
    heapMiB: z
      .number()
      .int()
      .min(64)
      .max(1 << 20)
      .optional(),
    volumeSizeMiB: z
      .number()
      .int()
      .min(16)
      .max(16 << 20)
      .optional(),
    /** A second volume per member for the write-ahead log, commit log or journal, where the type has one. */
    journalVolumeSizeMiB: z
      .number()
      .int()
      .min(16)
      .max(16 << 20)
      .optional(),
    /** Options the type lets change after create (`firecampd service config --set KEY=VALUE`). */
    settings: z.record(z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/), z.string().max(1024)).optional(),
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
    /** PostgreSQL: a commit is acknowledged once this many standbys have it. */
    postgres: z
      .object({ syncStandbys: z.number().int().min(0).max(16) })
      .strict()
      .optional(),
    /** Elasticsearch: this many of the first members are dedicated cluster managers (no data); 0 or 3. */
    elasticsearch: z
      .object({ dedicatedMasters: z.number().int().min(0).max(16) })
      .strict()
      .optional(),
    /** Services this one needs, by kind (Kafka Connect: the Kafka service its workers use); each must be ACTIVE at create. */
    needs: z.object({ zookeeper: serviceName.optional(), kafka: serviceName.optional() }).strict().optional(),
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
  /** The scale under way was asked with --rebalance: the type moves data onto the new members before ACTIVE. */
  rebalance?: boolean;
  /** Bumped by each upgrade, restart and config change; a member whose spec is of an older one is rolled. */
  generation?: number;
  /** What the type keeps of its own (PostgreSQL: which member is the primary). */
  state?: TypeState;
  created_at: string;
  updated_at: string;
}

export type TypeState = Record<string, string | number | boolean | undefined>;

export interface MemberContext {
  domain: string;
  /** The static IP of each member by index, where it has one. */
  ips: (string | undefined)[];
  /** The service's type state (e.g. its current primary). */
  state: TypeState;
  /** Every node's address: where members without static IPs may run. */
  nodeAddrs: string[];
  /** The specs of the services this one needs (spec.needs), by kind. */
  needed: Partial<Record<NeedKind, ServiceSpec>>;
}

/** A placed member and the address the leader reaches it at. */
export interface PlacedMember {
  spec: MemberSpec;
  host: string;
}

/** The next step of a rollout (upgrade, restart, config change), given that every member serves. */
/** `stop`: the member stops (same epoch) until a later step restarts it; the type is then asked again, its other members' readiness aside. */
export type RolloutStep = ({ restart: string } | { wait: string } | { stop: string }) & { state?: TypeState };

/** What a caller sees of each member beyond its container: its role in the service and how far behind it is. */
export interface MemberRole {
  role: string;
  lagBytes?: number;
}

/** A member's CPU and memory limits, from the service's --cpus and --memory: spread into a member spec. */
export const memberResources = (spec: ServiceSpec): Pick<MemberSpec, 'resources'> =>
  spec.memoryMiB || spec.cpus ? { resources: { ...(spec.memoryMiB ? { memoryMiB: spec.memoryMiB } : {}), ...(spec.cpus ? { cpus: spec.cpus } : {}) } } : {};

/** Setting checks the types share: why the value will not do, or undefined. */
export const wholeNumber = (v: string, min: number, max: number): string | undefined =>
  /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? undefined : `a whole number from ${min} to ${max}`;
export const trueOrFalse = (v: string): string | undefined => (v === 'true' || v === 'false' ? undefined : 'true or false');

/** A setting `firecampd service config --set` may change; its value is checked before it is kept. */
export interface Setting {
  describe: string;
  default?: string;
  /** Why the value will not do, or undefined if it will. */
  check(value: string): string | undefined;
}

/** One module per service type: its folder under src/catalog/services/ holds it with its image recipe and doc. */
export interface ServiceType {
  readonly image: string;
  /** Secrets generated once per service (passwords, keyfiles), kept under the controldb's secret prefix. */
  readonly secrets: readonly string[];
  /** Settings a user may change after create, by name. */
  readonly settings: Readonly<Record<string, Setting>>;
  /** The kinds of service this type needs (`--kafka NAME`): create refuses without one of each, ACTIVE. */
  readonly needs?: readonly NeedKind[];
  /** Check and complete a user's spec; throws UserError with what to change. */
  normalize(spec: ServiceSpecInput): ServiceSpec;
  /** The type state a new service starts with. */
  initialState?(spec: ServiceSpec): TypeState;
  /** Why the spec cannot run without static IPs, or undefined if it can. */
  needsStaticIps(spec: ServiceSpec): string | undefined;
  /** Why the service cannot change to `replicas` members, or undefined if it can. */
  cannotScale(spec: ServiceSpec, replicas: number, state: TypeState): string | undefined;
  /** The members' specs, without node and epoch (the catalog decides those). */
  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[];
  /** Members of one group (a shard) are kept apart: on other nodes, then in other zones. */
  group(spec: ServiceSpec, index: number): number;
  /** DNS names that follow one member (PostgreSQL: primary.<service>.<domain> → the primary), fully qualified. */
  aliases?(spec: ServiceSpec, state: TypeState, domain: string): { name: string; member: string }[];
  /**
   * Bring running members together (e.g. form the Redis cluster). Returns
   * what it still waits for, or undefined when done. Runs again on every
   * pass until done, also on a new leader: each step must be idempotent.
   */
  initialize(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<string | undefined>;
  /** Keep the running service in shape on every pass (PostgreSQL: one replication slot per standby). Idempotent. */
  maintain?(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<void>;
  /**
   * After a scale out: bring the new members into the running service
   * (ZooKeeper: a reconfig that makes them voters). Returns what it still
   * waits for, or undefined when done; idempotent, as initialize is.
   */
  join?(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<string | undefined>;
  /**
   * After a scale out with --rebalance, once the new members joined: move
   * data onto them (Kafka: partitions) until every member holds a fair share.
   * Returns what it still waits for, or undefined when balanced; idempotent.
   */
  rebalance?(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<string | undefined>;
  /**
   * Before a scale in removes `leaving`: take them out of the service first
   * (ZooKeeper: a reconfig without them), so that it never counts on members
   * that are gone. Returns what it still waits for, or undefined when done.
   */
  leave?(spec: ServiceSpec, members: PlacedMember[], leaving: PlacedMember[], ctx: TypeContext): Promise<string | undefined>;
  /** Why a running member does not serve yet, or undefined if it does. */
  notReady(spec: ServiceSpec, member: PlacedMember, ctx: TypeContext): Promise<string | undefined>;
  /** The next step of a rollout: which of `pending` restarts next, in the type's order (replicas before the primary). */
  rolloutStep(spec: ServiceSpec, members: PlacedMember[], pending: PlacedMember[], ctx: TypeContext): Promise<RolloutStep>;
  /** Each member's role and lag, for `service get`; undefined where the type has no roles. */
  roles?(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<Record<string, MemberRole>>;
  /** How `service credentials` names each secret (e.g. "password of the postgres superuser"). */
  describeSecret(name: string): { user?: string; describe: string };
}

/** For the types that do not run on a JVM: --heap-mib means nothing to them. */
export function refuseHeap(spec: ServiceSpecInput, what: string): void {
  if (spec.heapMiB !== undefined)
    throw new UserError(`--heap-mib is for the types that run on a JVM (zookeeper, kafka, kafka-connect, cassandra, elasticsearch); ${what} takes --memory`);
}

/** What a type's steps get besides the spec and members. */
export interface TypeContext {
  state: TypeState;
  secrets: Record<string, string>;
  log: Logger;
  /** A stopped member is gone from every node: no node holds its claim any more. */
  released(member: string): boolean;
  /** Run one of the service's own tools inside a member's container, on whichever node runs it. */
  exec: MemberExec;
  /** Where a member of the service is reached now, by its DNS name (members advertise names the leader's resolver may not know). */
  lookup(name: string): string | undefined;
}
