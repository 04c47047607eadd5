// A service as its type's backup steps see it, from this node's replica: the
// record, the type, its members where they run, and the context the type's
// calls take (secrets, a way to run its tools in a member).
import { readClusterCa } from '../security/tokens.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import type { Logger } from '../log.ts';
import type { MemberExec } from '../catalog/member-exec.ts';
import { placedMembers, readMembers, readSecrets } from '../catalog/records.ts';
import { readService } from '../catalog/service-records.ts';
import { serviceType } from '../catalog/registry.ts';
import type { MemberSpec } from '../agent/members.ts';
import type { PlacedMember, Service, ServiceType, TypeContext } from '../catalog/types.ts';

export interface BackupContext {
  svc: Service;
  type: ServiceType;
  members: MemberSpec[];
  placed: PlacedMember[];
  ctx: TypeContext;
}

export function backupContext(db: ControlDb, exec: MemberExec, log: Logger, service: string): BackupContext {
  const svc = readService(db.store, service)?.value;
  if (!svc) throw new Error(`service ${service} is gone`);
  const members = readMembers(db.store, service).map((m) => m.value);
  const placed = placedMembers(db.store, members);
  const ctx: TypeContext = {
    state: svc.state ?? {},
    secrets: readSecrets(db.store, service)?.value ?? {},
    log,
    released: () => false,
    exec,
    // As the catalog's passes do: members advertise names this node's own resolver may not know.
    lookup: (name) => placed.find((m) => m.spec.dnsName === name)?.host,
    ca: readClusterCa(db.store)?.certPem,
  };
  return { svc, type: serviceType(svc.spec.type), members, placed, ctx };
}
