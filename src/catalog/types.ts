// Services as kept in the controldb, and the interface every service type
// implements. All of a service's state is in its record and its members'
// records, so a new leader carries on where the old one stopped.
import { z } from 'zod';
import { UserError } from '../errors.ts';
import type { Argv } from 'yargs';
import type { MemberSpec } from '../agent/members.ts';
import type { ApiServer } from '../api/server.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import type { Logger } from '../log.ts';
import type { MemberExec } from './member-exec.ts';

export const SERVICES_PREFIX = '/services/';
/** Each service's members' roles and lag, as the catalog last saw them. */
export const ROLES_PREFIX = '/roles/';
export const serviceKey = (name: string) => `${SERVICES_PREFIX}${name}`;
export const noSuchService = (name: string) => new UserError(`no service named ${name} (see "firecampd service list")`, 404, 'not_found');

export type ServiceStatus = 'CREATING' | 'INITIALIZING' | 'ACTIVE' | 'SCALING' | 'UPGRADING' | 'RESTARTING' | 'STOPPING' | 'STOPPED' | 'DELETING' | 'FAILED';

/**
 * A service as a user asks for it: the fields every type shares, checked by the spec schema of spec.ts, which the
 * registry's types complete. A type's own options sit under its name (spec.redis, spec.postgres), checked by the
 * schema the type declares (ServiceType.options): only its own module reads them, through typeOptions.
 */
export interface ServiceSpecInput {
  type: string;
  name: string;
  /** Members in all; a type may work it out from its own options (Redis cluster: shards × (1 + replicas per shard)). */
  replicas?: number;
  image?: string;
  memoryMiB?: number;
  cpus?: number;
  /** The JVM's heap (-Xmx and -Xms), for the types that run on one (ServiceType.jvm). */
  heapMiB?: number;
  volumeSizeMiB?: number;
  /** A second volume per member for the write-ahead log, commit log or journal, where the type has one (ServiceType.journal). */
  journalVolumeSizeMiB?: number;
  /** Options the type lets change after create (`firecampd service config --set KEY=VALUE`). */
  settings?: Record<string, string>;
  /** Extra lines appended to the service's config file. */
  config?: string;
  /** Services this one needs, by the type of each (Kafka Connect: the kafka service its workers use); each must be ACTIVE at create. */
  needs?: Record<string, string>;
  /** Only nodes that carry every one of these labels (firecampd --labels) may run the members. */
  placement?: { labels: Record<string, string> };
  /** The backup target of this service, where it is not the cluster's (`--backup-target`). */
  backupTarget?: string;
  /** When backups are made: a cron expression, in UTC (`--backup-schedule`). */
  backupSchedule?: string;
  /** Which backups are kept: a count ("7") or an age ("30d") (`--backup-retention`); the newest complete one always. */
  backupRetention?: string;
  /** Each scheduled backup is restored into a throwaway service and checked once made, a restore drill (`--backup-verify`). */
  backupVerify?: boolean;
  /** "off": the members serve no TLS (`--tls off`); absent: they do, where the type can. */
  tls?: 'on' | 'off';
  /** How long members' certificates last, in hours (`--tls-cert-hours`; default a year); renewed by a rolling restart in their last third. */
  tlsCertHours?: number;
  /** The networks (canonical CIDRs) that reach the members besides the cluster's nodes and the members themselves; none: the networks of the nodes' addresses. */
  allow?: string[];
  /** Where Docker sends the members' output besides the kept log (`--log-driver`, `--log-opt`), as `docker run --log-driver` does. */
  logDriver?: string;
  logOpts?: Record<string, string>;
  /** Made by `backup restore`: the backup whose parts the members start from (see TypeBackup.restore). */
  restore?: RestoreSource;
  /** The type's own options block, under the type's name. */
  [typeOptions: string]: unknown;
}

/** The backup a restored service starts from: where it is, which key opens it, and its parts by member index. */
export interface RestoreSource {
  backup: string;
  target: string;
  keyId: string;
  parts: { index: number; name: string; key: string; sha256: string }[];
  /** The archived log's files the restore replays after the parts (PostgreSQL's WAL), in log order: each object on the target and its file name. */
  archive?: { key: string; name: string }[];
  /** Replay the archived log up to this time (RFC 3339), not to its end (`backup restore --to-time`). */
  toTime?: string;
}

/** A spec once its type has completed it: the member count is known. */
export type ServiceSpec = ServiceSpecInput & { replicas: number };

/** A type's own options block of a spec, as its schema checked it when the spec was made (and the records layer when it was read). */
export const typeOptions = <T>(spec: ServiceSpecInput, type: { name: string; options?: TypeOptions<T> }): T | undefined => spec[type.name] as T | undefined;

/** A flag of `firecampd service create` that a type adds for its own options. */
export interface TypeFlag {
  type: 'number' | 'string';
  describe: string;
  defaultDescription?: string;
}

/** A type's own options: a block of the spec under the type's name, and the create flags that fill it. */
export interface TypeOptions<T = unknown> {
  schema: z.ZodType<T>;
  /** By flag name (`sync-standbys`); no two types share a flag. */
  flags: Readonly<Record<string, TypeFlag>>;
  /** The block from the flags given (by flag name; absent when not given), or undefined when none was. */
  fromFlags(given: Record<string, unknown>): T | undefined;
}

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
  /** What the catalog last found of the service, a condition per concern (Ready, Progressing, Stalled), as Kubernetes keeps them. */
  conditions?: Condition[];
  created_at: string;
  updated_at: string;
}

/**
 * One concern's last verdict on a service, in the manner of Kubernetes' status conditions: `status` says whether
 * `type` holds, `reason` says why in one CamelCase word a script may match, `message` says it for people. The time
 * moves only when the status flips; `observedGeneration` is the service's generation the verdict was made for.
 */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration: number;
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
  needed: Record<string, ServiceSpec>;
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
  /** The name users give in --type; the type's folder has it too. */
  readonly name: string;
  /** How messages name it: "PostgreSQL". */
  readonly title: string;
  /** The upstream image, pinned; the stand-in recipe of the folder's image.ts builds the same name. */
  readonly image: string;
  /** What a service gets when its spec leaves these out. */
  readonly defaults: { readonly replicas: number; readonly volumeSizeMiB: number };
  /** It runs on a JVM: --heap-mib is for it. */
  readonly jvm?: boolean;
  /** How it serves TLS from the cluster CA, on unless the service says `--tls off`: "clients and replication". Absent: not yet. */
  readonly tls?: string;
  /** What its second volume holds (--journal-volume-size), where it has one: "the write-ahead log". */
  readonly journal?: string;
  /** Options of its own, under its name in the spec, and their create flags. */
  readonly options?: TypeOptions;
  /** How the type is backed up and restored, where it is. */
  readonly backup?: TypeBackup;
  /** HTTP routes of its own (Kafka Connect: its connectors). */
  routes?(api: ApiServer, db: ControlDb): void;
  /** `firecampd service` subcommands of its own (Kafka Connect: connector). */
  readonly commands?: readonly { command: string; describe: string; builder: (y: Argv) => Argv }[];
  /** Secrets generated once per service (passwords, keyfiles), kept under the controldb's secret prefix. */
  readonly secrets: readonly string[];
  /** Settings a user may change after create, by name. */
  readonly settings: Readonly<Record<string, Setting>>;
  /** The types of service this one needs (`--kafka NAME`): create refuses without one of each, ACTIVE. */
  readonly needs?: readonly string[];
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

/** A part of a backup: which member dumps what; the command's stdout is the part (never held whole: streamed to the target). */
export interface PartDump {
  member: string;
  name: string;
  cmd: string[];
}

/**
 * A part the leader makes itself from what the service's own API tells (Kafka's topics and consumer offsets), sealed
 * and stored as a dumped part is; held whole, so for what is small. Named by a member, as every part is.
 */
export interface PartContent {
  member: string;
  name: string;
  content: Buffer;
}

/**
 * What a restored member gets in its volume before its first start, once: parts (by the backed-up member's index and
 * the part's name) at paths (a tar part unpacked into its path, a directory), files beside them, and the archived log's
 * files in a directory.
 */
export interface MemberRestore {
  parts: { index: number; name: string; path: string; unpack?: 'tar' }[];
  files: { path: string; content: string }[];
  /** Where the archived log's files go, each under its own name, for the service to replay. */
  archive?: { path: string };
}

/**
 * A type whose log is archived continuously between backups (PostgreSQL's WAL), so that a restore reaches any moment
 * after a backup. The service's own archive command leaves each finished log file in the spool directory of the
 * member's volume (an atomic rename: a file there is whole); the node running the member ships it to the target of
 * the service's backups and removes it. The spool moves with the volume, so a file is shipped by whichever node runs
 * the member next.
 */
export interface TypeArchive {
  /** The spool directory, relative to the member's volume. */
  spool: string;
  /** The first log file a backup started now needs (read from the member that is archiving). */
  position(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<string>;
  /** Close the log file being written, so that everything until now reaches the archive; the name of the file closed. */
  flush(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<string>;
  /** The log files a restore from a backup that starts at `from` replays, of the `names` archived: in order, and the name at which they stop being contiguous (a gap), if they do. */
  replay(from: string, names: string[]): { files: string[]; gapAfter?: string };
  /** Whether an archived file comes before `from`, so that no restore from a backup starting there replays it (retention removes it). */
  precedes(name: string, from: string): boolean;
}

export interface TypeBackup {
  /** Why this service cannot be backed up, or undefined. */
  cannotBackUp?(spec: ServiceSpec): string | undefined;
  /** The parts of a backup of the running service. */
  parts(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<(PartDump | PartContent)[]>;
  /** What member `index` of a service restored from a backup starts from; undefined: it joins the others as a new member would (a replica syncs). */
  restore(spec: ServiceSpec, index: number): MemberRestore | undefined;
  /**
   * What a restored service gets back once its members run, of what no member reads from its volume (Kafka's topics
   * and offsets, Connect's connectors): through the service's own API, from the parts `part` reads by name. Runs as
   * the last step of the first initialization, again until it returns undefined: idempotent; returns what it waits for.
   */
  apply?(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext, part: (name: string) => Promise<Buffer>): Promise<string | undefined>;
  /** The type's log is archived between backups, for restores to a point in time. */
  archive?: TypeArchive;
  /**
   * The type's own check of a service restored from a backup, for `backup verify`: what it holds, in a few words
   * (PostgreSQL: its tables and size; Redis: its keys); throws when the service does not hold up.
   */
  check(spec: ServiceSpec, members: PlacedMember[], ctx: TypeContext): Promise<string>;
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
  /** The cluster CA's certificate: what the type's own clients verify members' TLS against. */
  ca?: string;
}

/** The service's members serve TLS: the type can, and the service did not say `--tls off`. */
export const servesTls = (type: Pick<ServiceType, 'tls'>, spec: Pick<ServiceSpecInput, 'tls'>): boolean => !!type.tls && spec.tls !== 'off';

/** A member's TLS block where the service serves TLS: its certificate in `dir` of its volume, also for `names`. */
export const memberTls = (type: Pick<ServiceType, 'tls'>, spec: ServiceSpec, dir: string, names: string[] = []): Pick<MemberSpec, 'tls'> =>
  servesTls(type, spec)
    ? { tls: { dir, ...(names.length ? { names } : {}), ...(spec.tlsCertHours !== undefined ? { lifetimeHours: spec.tlsCertHours } : {}) } }
    : {};
