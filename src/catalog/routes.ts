// HTTP routes for services: create, list, get, scale, upgrade, restart,
// config, credentials, stop, start, delete. Each writes the service's record (the wanted state) through the
// controldb; the catalog on the leader does the rest.
import { z } from 'zod';
import { serviceBackupsView, type ServiceBackupsView } from '../backup/view.ts';
import { recordEvent } from '../events/events.ts';
import { accessView, type AccessView } from '../firewall/view.ts';
import type { Logger } from '../log.ts';
import type { ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { put, readMembers, readRoles, readSecrets, readStatus } from './records.ts';
import { readService, readServices } from './service-records.ts';
import { serviceType, serviceTypes } from './registry.ts';
import { generateSecrets } from './secrets.ts';
import { readClusterCa } from '../security/tokens.ts';
import { completeSpec, neededTypes, serviceSpecSchema } from './spec.ts';
import { noSuchService, serviceKey, servesTls, type Service, type ServiceType, type ServiceSpec, type ServiceSpecInput, type ServiceStatus } from './types.ts';

const nameBody = z.object({ name: z.string().min(1) }).strict();
const scaleBody = z.object({ name: z.string().min(1), replicas: z.number().int().min(1).max(64), rebalance: z.boolean().optional() }).strict();
const upgradeBody = z.object({ name: z.string().min(1), image: z.string().min(1).max(255) }).strict();
const configBody = z.object({ name: z.string().min(1), set: z.record(z.string(), z.string()) }).strict();

export interface ServiceView extends Service {
  /** The services that need this one (their spec.needs names it); it cannot be deleted before them. */
  needed_by: string[];
  members: {
    name: string;
    node: string;
    epoch: number;
    image: string;
    ip: string | null;
    dns: string | null;
    state: string;
    health: string | null;
    /** The member's role in the service (primary, standby, master, …) and how many bytes of the primary's log it lacks, as the catalog last saw. */
    role: string | null;
    lag_bytes: number | null;
    message: string;
  }[];
  /** Who reaches the members (`--allow`). */
  access: AccessView;
  /** Whether its members serve TLS from the cluster CA, and what that covers or why not. */
  tls: { enabled: boolean; detail: string };
  /** For a type that backs up: where its backups go, its schedule, the next run and the last ones. */
  backups?: ServiceBackupsView;
}

function tlsView(type: ServiceType, spec: ServiceSpec): ServiceView['tls'] {
  if (servesTls(type, spec)) return { enabled: true, detail: `${type.tls!}; clients trust the cluster CA ("firecampd service ca ${spec.name}")` };
  if (type.tls) return { enabled: false, detail: 'off (--tls off at create): clients and members talk in plaintext' };
  return { enabled: false, detail: `not yet for ${type.title}: clients and members talk in plaintext` };
}

export interface SettingView {
  name: string;
  value: string;
  default: string | null;
  describe: string;
}

export interface ServiceRouteOptions {
  /** This node's --ip-pool: a spec that needs static IPs is refused at once without one. */
  ipPool: string[];
  /** Where backups go when neither the service nor the cluster names a target (for `service get`). */
  defaultBackupTarget?: string;
  log: Logger;
}

/** Each setting the type lets change, with the service's value and the default. */
function settingsView(spec: ServiceSpec): SettingView[] {
  return Object.entries(serviceType(spec.type).settings).map(([name, s]) => ({
    name,
    value: spec.settings?.[name] ?? s.default ?? '',
    default: s.default ?? null,
    describe: s.describe,
  }));
}

/** Throws, naming the setting and what it takes, on an unknown setting or a bad value. */
function checkSettings(spec: ServiceSpec): void {
  const known = serviceType(spec.type).settings;
  for (const [k, v] of Object.entries(spec.settings ?? {})) {
    const setting = known[k];
    if (!setting) {
      const names = Object.keys(known);
      throw new UserError(
        `${spec.type} has no setting ${k}${names.length ? `; it lets you change ${names.join(', ')}` : ' (it has none that can change)'}`,
        400,
        'invalid_request',
      );
    }
    const why = setting.check(v);
    if (why) throw new UserError(`setting ${k}=${v} will not do: ${why}`, 400, 'invalid_request');
  }
}

/** The services whose spec names `name` among what they need. */
function neededBy(all: Service[], name: string): string[] {
  return all.filter((s) => Object.values(s.spec.needs ?? {}).includes(name)).map((s) => s.spec.name);
}

/** What other parts may do with services: make one (a restore does), remove one (a restore drill's). */
export interface ServiceRoutes {
  create(input: ServiceSpecInput, secrets?: Record<string, string>): Promise<ServiceView>;
  remove(name: string): Promise<ServiceView>;
}

export function registerServiceRoutes(api: ApiServer, db: ControlDb, o: ServiceRouteOptions): ServiceRoutes {
  const allServices = () => readServices(db.store).map((s) => s.value);
  /**
   * The services `spec` needs, each checked: it exists, is of its kind and ACTIVE. Returns their records'
   * revisions, which the create compares and bumps so that a delete of one of them racing the create fails.
   */
  const neededRecords = (spec: ServiceSpec) => {
    const wanted = serviceType(spec.type).needs ?? [];
    for (const kind of neededTypes()) {
      const given = spec.needs?.[kind];
      if (given !== undefined && !wanted.includes(kind)) throw new UserError(`--${kind} is not for a ${spec.type} service: it needs no ${kind} service`);
      if (given === undefined && wanted.includes(kind))
        throw new UserError(`a ${spec.type} service needs a ${kind} service: name it with --${kind} NAME (see "firecampd service list")`);
    }
    return wanted.map((kind) => {
      const name = spec.needs![kind];
      const stored = readService(db.store, name);
      if (!stored) throw new UserError(`${spec.name} needs the ${kind} service ${name}, and there is none: create it first`, 400, 'needs_missing');
      const needed = stored.value;
      if (needed.spec.type !== kind) throw new UserError(`--${kind} ${name}: ${name} is a ${needed.spec.type} service, not ${kind}`, 400, 'needs_missing');
      if (needed.status !== 'ACTIVE')
        throw new UserError(
          `${spec.name} needs ${name}, which is ${needed.status}: create it once ${name} is ACTIVE ("firecampd service get ${name}")`,
          409,
          'needs_not_ready',
        );
      return { key: stored.key, value: stored.raw, rev: stored.rev };
    });
  };
  const view = (svc: Service, all = allServices()): ServiceView => {
    const name = svc.spec.name;
    const roles = readRoles(db.store, name);
    const members = readMembers(db.store, name).map(({ value: m }) => {
      const status = readStatus(db.store, name, m.name);
      const current = status && status.epoch === m.epoch && status.node === m.node;
      const state = m.stopped && !current ? 'stopped' : current ? status.state : 'pending';
      return {
        name: m.name,
        node: m.node,
        epoch: m.epoch,
        image: m.image,
        ip: m.ip ?? null,
        dns: m.dnsName ?? null,
        state,
        health: (current && status.health) || null,
        role: roles[m.name]?.role ?? null,
        lag_bytes: roles[m.name]?.lagBytes ?? null,
        message: current ? (status.message ?? '') : '',
      };
    });
    const type = serviceType(svc.spec.type);
    const backups = type.backup && o.defaultBackupTarget ? { backups: serviceBackupsView(db, svc, o.defaultBackupTarget) } : {};
    return { ...svc, needed_by: neededBy(all, name), members, access: accessView(db.store, svc.spec), tls: tlsView(type, svc.spec), ...backups };
  };
  const get = async (name: string): Promise<{ svc: Service; rev: number }> => {
    await db.linearize();
    const stored = readService(db.store, name);
    if (!stored) throw noSuchService(name);
    return { svc: stored.value, rev: stored.rev };
  };
  /** Move a service to a new status, if nobody changed it meanwhile (two operators at once get a clear 409). */
  /** `guard` may refuse after the read whose revision the change compares (delete: while others need the service). */
  const transition = async (
    name: string,
    from: ServiceStatus[],
    to: ServiceStatus,
    message: string,
    change: (s: Service) => Service = (s) => s,
    guard: () => void = () => {},
  ) => {
    const { svc, rev } = await get(name);
    if (!from.includes(svc.status)) throw new UserError(`service ${name} is ${svc.status}; this needs it ${from.join(' or ')}`, 409, 'busy');
    guard();
    const next: Service = { ...change(svc), status: to, message, updated_at: new Date().toISOString() };
    const r = await db.txn({
      compare: [{ key: serviceKey(name), target: 'mod_revision', op: '=', value: rev }],
      success: [put.service(next)],
      failure: [],
    });
    if (!r.succeeded) throw new UserError(`service ${name} changed meanwhile; look at "firecampd service get ${name}" and try again`, 409, 'conflict');
    void recordEvent(db, o.log, { kind: to.toLowerCase(), service: name, reason: `asked for: ${message}` });
    return view(next);
  };

  /** Make a service from a user's spec; `secrets` (a restore's: what its data was made with) win over kept and new ones. */
  const create = async (input: ServiceSpecInput, given: Record<string, string> = {}): Promise<ServiceView> => {
    const spec = completeSpec(input);
    const type = serviceType(spec.type);
    const needs = o.ipPool.length === 0 ? type.needsStaticIps(spec) : undefined;
    if (needs) throw new UserError(needs, 400, 'needs_static_ips');
    checkSettings(spec);
    const now = new Date().toISOString();
    const svc: Service = {
      spec,
      status: 'CREATING',
      message: 'placing members',
      generation: 0,
      ...(type.initialState ? { state: type.initialState(spec) } : {}),
      created_at: now,
      updated_at: now,
    };
    // Secrets are made with the service, in its transaction, so that they exist before any member does.
    // Those of an earlier service of this name are kept: its volumes, which hold data made with them, are kept too.
    await db.linearize();
    const secrets = { ...generateSecrets(type.secrets, readSecrets(db.store, spec.name)?.value ?? {}), ...given };
    const needed = neededRecords(spec);
    const r = await db.txn({
      compare: [
        { key: serviceKey(spec.name), target: 'exists', op: '=', value: false },
        ...needed.map((n) => ({ key: n.key, target: 'mod_revision' as const, op: '=' as const, value: n.rev })),
      ],
      success: [
        put.service(svc),
        put.secrets(spec.name, secrets),
        // Written unchanged: a new revision, which a delete of the needed service that read it before this create compares and fails on.
        ...needed.map((n) => ({ put: { key: n.key, value: n.value } })),
      ],
      failure: [],
    });
    if (!r.succeeded) {
      if (db.store.get(serviceKey(spec.name)))
        throw new UserError(`a service named ${spec.name} exists already; pick another name or delete it first`, 409, 'exists');
      throw new UserError(`a service ${spec.name} needs changed meanwhile; look at "firecampd service list" and try again`, 409, 'conflict');
    }
    void recordEvent(db, o.log, {
      kind: 'created',
      service: spec.name,
      reason: `${spec.type}, ${spec.replicas} member${spec.replicas === 1 ? '' : 's'}${spec.restore ? `, restored from backup ${spec.restore.backup}` : ''}`,
    });
    return view(svc);
  };
  api.route('POST', '/v1/services', async (req) => {
    const input = parseBody(serviceSpecSchema(), req.body);
    if (input.restore) throw new UserError('a service starts from a backup by "firecampd backup restore ID --as NAME"', 400, 'invalid_request');
    return create(input);
  });

  api.route('GET', '/v1/services', async () => {
    await db.linearize();
    const all = allServices();
    return { services: all.map((s) => view(s, all)) };
  });
  api.route('GET', '/v1/service', async (req) => view((await get(req.query.get('name') ?? '')).svc));
  api.route('POST', '/v1/services/scale', async (req) => {
    const { name, replicas, rebalance } = parseBody(scaleBody, req.body);
    const { svc } = await get(name);
    const type = serviceType(svc.spec.type);
    const why = type.cannotScale(svc.spec, replicas, svc.state ?? {});
    if (why) throw new UserError(why, 400, 'cannot_scale');
    if (rebalance && !type.rebalance)
      throw new UserError(
        `--rebalance is for the types that move data onto new members (${serviceTypes()
          .filter((t) => t.rebalance !== undefined)
          .map((t) => t.name)
          .join(', ')}); ${svc.spec.type} does not`,
        400,
        'cannot_scale',
      );
    if (rebalance && replicas <= svc.spec.replicas)
      throw new UserError(`--rebalance goes with a scale out: ${name} has ${svc.spec.replicas} members, and ${replicas} is not more`, 400, 'cannot_scale');
    // A placement that is stalled (no addresses or nodes for that many) may ask for another count: the way out without a delete.
    const stalled = svc.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True');
    const from: ServiceStatus[] = stalled ? ['ACTIVE', 'CREATING', 'SCALING', 'FAILED'] : ['ACTIVE'];
    const to: ServiceStatus = svc.status === 'CREATING' || svc.status === 'FAILED' ? 'CREATING' : 'SCALING';
    return transition(name, from, to, `to ${replicas} members${rebalance ? ', then rebalancing' : ''}`, (s) => ({
      ...s,
      spec: { ...s.spec, replicas },
      ...(rebalance ? { rebalance: true } : {}),
    }));
  });
  const nextGeneration = (s: Service, spec: ServiceSpec): Service => ({ ...s, spec, generation: (s.generation ?? 0) + 1 });
  api.route('POST', '/v1/services/upgrade', async (req) => {
    const { name, image } = parseBody(upgradeBody, req.body);
    return transition(name, ['ACTIVE'], 'UPGRADING', `to ${image}, one member at a time`, (s) => nextGeneration(s, { ...s.spec, image }));
  });
  api.route('POST', '/v1/services/restart', async (req) =>
    transition(parseBody(nameBody, req.body).name, ['ACTIVE'], 'RESTARTING', "one member at a time, in the type's order", (s) => nextGeneration(s, s.spec)),
  );
  api.route('GET', '/v1/service/config', async (req) => {
    const { svc } = await get(req.query.get('name') ?? '');
    return { name: svc.spec.name, settings: settingsView(svc.spec) };
  });
  // A change of settings is a rolling restart with the members' config made anew.
  api.route('POST', '/v1/services/config', async (req) => {
    const { name, set } = parseBody(configBody, req.body);
    const { svc } = await get(name);
    const spec: ServiceSpec = { ...svc.spec, settings: { ...svc.spec.settings, ...set } };
    checkSettings(spec);
    const changed = Object.keys(set).filter((k) => svc.spec.settings?.[k] !== set[k]);
    if (changed.length === 0) return { ...view(svc), settings: settingsView(svc.spec) };
    const v = await transition(name, ['ACTIVE'], 'RESTARTING', `applying ${changed.join(', ')}, one member at a time`, (s) => nextGeneration(s, spec));
    return { ...v, settings: settingsView(spec) };
  });
  // What a client of the service trusts: the cluster CA that signs its members' certificates (public, like any CA certificate).
  api.route('GET', '/v1/service/ca', async (req) => {
    const { svc } = await get(req.query.get('name') ?? '');
    const ca = readClusterCa(db.store);
    if (!ca) throw new UserError("the cluster's CA is not stored yet; retry shortly", 503, 'unavailable');
    return { name: svc.spec.name, tls: tlsView(serviceType(svc.spec.type), svc.spec), ca: ca.certPem };
  });
  // The service's generated secrets, for a holder of an API token (never logged, never in `service get`).
  api.route('GET', '/v1/service/credentials', async (req) => {
    const { svc } = await get(req.query.get('name') ?? '');
    const secrets = readSecrets(db.store, svc.spec.name)?.value ?? {};
    const type = serviceType(svc.spec.type);
    return {
      name: svc.spec.name,
      credentials: Object.entries(secrets).map(([secret, value]) => ({ secret, ...type.describeSecret(secret), value })),
    };
  });
  api.route('POST', '/v1/services/stop', async (req) =>
    transition(parseBody(nameBody, req.body).name, ['ACTIVE', 'INITIALIZING'], 'STOPPING', 'stopping members'),
  );
  api.route('POST', '/v1/services/start', async (req) => transition(parseBody(nameBody, req.body).name, ['STOPPED'], 'INITIALIZING', 'starting members'));
  const remove = async (name: string) => {
    const { svc } = await get(name);
    // Checked after the read whose revision the delete compares: a create of a service that needs this one bumps it.
    const notNeeded = () => {
      const users = neededBy(allServices(), name);
      if (users.length > 0) throw new UserError(`${name} is needed by ${users.join(', ')}: delete ${users.length > 1 ? 'them' : 'it'} first`, 409, 'needed');
    };
    return transition(name, [svc.status], 'DELETING', 'stopping members', (s) => s, notNeeded);
  };
  api.route('POST', '/v1/services/delete', async (req) => remove(parseBody(nameBody, req.body).name));
  for (const type of serviceTypes()) type.routes?.(api, db);
  return { create, remove };
}
