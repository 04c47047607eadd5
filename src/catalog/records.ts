// The controldb's records of members, their status and claims, roles, nodes
// and services' secrets (services themselves: service-records.ts): the one
// layer that reads them, each checked against its schema on the way in, and
// that makes the operations that write them. A record that does not parse is
// an error naming its key, never a half-read object further on. Nothing here
// loads the registry: the types' own modules read members through it.
import { z } from 'zod';
import {
  CLAIMS_PREFIX,
  MEMBERS_PREFIX,
  claimKey,
  memberKey,
  memberSpecSchema,
  serviceSecretsKey,
  statusKey,
  type Claim,
  type MemberSpec,
  type MemberStatus,
} from '../agent/members.ts';
import { parseHostPort } from '../config.ts';
import type { KeyValue } from '../controldb/types.ts';
import { NODES_PREFIX, parseNodeRecord, type NodeRecord } from '../controldb/membership.ts';
import { ROLES_PREFIX, serviceKey, type MemberRole, type PlacedMember, type Service } from './types.ts';

/** What the records layer reads through: a replica's store. */
export interface RecordStore {
  get(key: string): KeyValue | undefined;
  range(req: { key: string; prefix: boolean; limit: number }): { kvs: KeyValue[] };
}

/** A record with the revision a compare-and-set of it compares. */
export interface Stored<T> {
  value: T;
  rev: number;
  key: string;
  /** As stored: a write that must bump the revision without changing the record puts this back. */
  raw: string;
}

const statusSchema = z
  .object({
    node: z.string(),
    epoch: z.number().int(),
    state: z.enum(['starting', 'running', 'exited', 'failed', 'stopping']),
    health: z.enum(['starting', 'healthy', 'unhealthy']).optional(),
    container: z.string().optional(),
    ip: z.string().optional(),
    message: z.string().optional(),
    since: z.string(),
    certificateEnds: z.string().optional(),
  })
  .strict();

const claimSchema = z.object({ node: z.string(), epoch: z.number().int() }).strict();
const rolesSchema = z.record(z.string(), z.object({ role: z.string(), lagBytes: z.number().optional() }).strict());
const secretsSchema = z.record(z.string(), z.string());
export function parse<T>(schema: z.ZodType<T>, kv: KeyValue): Stored<T> {
  let json: unknown;
  try {
    json = JSON.parse(kv.value);
  } catch (err) {
    throw new Error(`record ${kv.key} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new Error(`record ${kv.key} does not read as it should: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return { value: r.data, rev: kv.mod_revision, key: kv.key, raw: kv.value };
}

export const all = (store: RecordStore, prefix: string) => store.range({ key: prefix, prefix: true, limit: 0 }).kvs;

/** A service's members (every member of every service without one). */
export const readMembers = (store: RecordStore, service?: string): Stored<MemberSpec>[] =>
  all(store, service === undefined ? MEMBERS_PREFIX : `${MEMBERS_PREFIX}${service}/`).map((kv) => parse(memberSpecSchema, kv));
export const readMember = (store: RecordStore, service: string, member: string): Stored<MemberSpec> | undefined => {
  const kv = store.get(memberKey(service, member));
  return kv ? parse(memberSpecSchema, kv) : undefined;
};

/** What the member's agent last reported, whichever assignment it was of. */
export const readStatus = (store: RecordStore, service: string, member: string): MemberStatus | undefined => {
  const kv = store.get(statusKey(service, member));
  return kv ? parse(statusSchema as z.ZodType<MemberStatus>, kv).value : undefined;
};

export const readClaim = (store: RecordStore, service: string, member: string): Stored<Claim> | undefined => {
  const kv = store.get(claimKey(service, member));
  return kv ? parse(claimSchema, kv) : undefined;
};
/** Some node still holds a claim of one of the service's members: its container may still run. */
export const claimsLeft = (store: RecordStore, service: string): boolean =>
  store.range({ key: `${CLAIMS_PREFIX}${service}/`, prefix: true, limit: 1 }).kvs.length > 0;

export const readRoles = (store: RecordStore, service: string): Record<string, MemberRole> => {
  const kv = store.get(ROLES_PREFIX + service);
  return kv ? parse(rolesSchema as z.ZodType<Record<string, MemberRole>>, kv).value : {};
};

export const readSecrets = (store: RecordStore, service: string): Stored<Record<string, string>> | undefined => {
  const kv = store.get(serviceSecretsKey(service));
  return kv ? parse(secretsSchema, kv) : undefined;
};

/** The cluster's nodes, as the controldb's membership keeps (and checks) them. */
export const readNodes = (store: RecordStore): NodeRecord[] => all(store, NODES_PREFIX).map(parseNodeRecord);

/** The operations that write records, so that each is written in one shape. */
export const put = {
  service: (svc: Service) => ({ put: { key: serviceKey(svc.spec.name), value: JSON.stringify(svc) } }),
  member: (m: MemberSpec) => ({ put: { key: memberKey(m.service, m.name), value: JSON.stringify(m) } }),
  roles: (service: string, roles: Record<string, MemberRole>) => ({ put: { key: ROLES_PREFIX + service, value: JSON.stringify(roles) } }),
  secrets: (service: string, secrets: Record<string, string>) => ({ put: { key: serviceSecretsKey(service), value: JSON.stringify(secrets) } }),
};

/** Where each member is reached: its static IP, else the address of the node that runs it (members share their host's network). */
export function placedMembers(store: RecordStore, specs: MemberSpec[]): PlacedMember[] {
  const addr = new Map(readNodes(store).map((n) => [n.id, parseHostPort(n.addr, 0, 'node address', true).host]));
  return specs.map((spec) => ({ spec, host: spec.ip ?? addr.get(spec.node) ?? '' }));
}
