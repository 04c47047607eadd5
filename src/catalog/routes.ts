// HTTP routes for services: create, list, get, scale, upgrade, stop, start,
// delete. Each writes the service's record (the wanted state) through the
// controldb; the catalog on the leader does the rest.
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { MEMBERS_PREFIX, STATUS_PREFIX, memberSpecSchema, type MemberStatus } from '../agent/members.ts';
import { SERVICE_TYPES } from './registry.ts';
import { SERVICES_PREFIX, noSuchService, serviceKey, serviceSpecSchema, type Service, type ServiceStatus } from './types.ts';

const nameBody = z.object({ name: z.string().min(1) }).strict();
const scaleBody = z.object({ name: z.string().min(1), replicas: z.number().int().min(1).max(64) }).strict();
const upgradeBody = z.object({ name: z.string().min(1), image: z.string().min(1).max(255) }).strict();

export interface ServiceView extends Service {
  members: {
    name: string;
    node: string;
    epoch: number;
    image: string;
    ip: string | null;
    dns: string | null;
    state: string;
    health: string | null;
    message: string;
  }[];
}

export interface ServiceRouteOptions {
  /** This node's --ip-pool: a spec that needs static IPs is refused at once without one. */
  ipPool: string[];
}

export function registerServiceRoutes(api: ApiServer, db: ControlDb, o: ServiceRouteOptions): void {
  const view = (svc: Service): ServiceView => {
    const name = svc.spec.name;
    const members = db.store.range({ key: `${MEMBERS_PREFIX}${name}/`, prefix: true, limit: 0 }).kvs.map((kv) => {
      const m = memberSpecSchema.parse(JSON.parse(kv.value));
      const st = db.store.get(`${STATUS_PREFIX}${name}/${m.name}`);
      const status = st ? (JSON.parse(st.value) as MemberStatus) : undefined;
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
        message: current ? (status.message ?? '') : '',
      };
    });
    return { ...svc, members };
  };
  const get = async (name: string): Promise<{ svc: Service; rev: number }> => {
    await db.linearize();
    const kv = db.store.get(serviceKey(name));
    if (!kv) throw noSuchService(name);
    return { svc: JSON.parse(kv.value) as Service, rev: kv.mod_revision };
  };
  /** Move a service to a new status, if nobody changed it meanwhile (two operators at once get a clear 409). */
  const transition = async (name: string, from: ServiceStatus[], to: ServiceStatus, message: string, change: (s: Service) => Service = (s) => s) => {
    const { svc, rev } = await get(name);
    if (!from.includes(svc.status)) throw new UserError(`service ${name} is ${svc.status}; this needs it ${from.join(' or ')}`, 409, 'busy');
    const next: Service = { ...change(svc), status: to, message, updated_at: new Date().toISOString() };
    const r = await db.txn({
      compare: [{ key: serviceKey(name), target: 'mod_revision', op: '=', value: rev }],
      success: [{ put: { key: serviceKey(name), value: JSON.stringify(next) } }],
      failure: [],
    });
    if (!r.succeeded) throw new UserError(`service ${name} changed meanwhile; look at "firecampd service get ${name}" and try again`, 409, 'conflict');
    return view(next);
  };

  api.route('POST', '/v1/services', async (req) => {
    const input = parseBody(serviceSpecSchema, req.body);
    const type = SERVICE_TYPES[input.type];
    const spec = type.normalize(input);
    const needs = o.ipPool.length === 0 ? type.needsStaticIps(spec) : undefined;
    if (needs) throw new UserError(needs, 400, 'needs_static_ips');
    const now = new Date().toISOString();
    const svc: Service = { spec, status: 'CREATING', message: 'placing members', created_at: now, updated_at: now };
    const r = await db.txn({
      compare: [{ key: serviceKey(spec.name), target: 'exists', op: '=', value: false }],
      success: [{ put: { key: serviceKey(spec.name), value: JSON.stringify(svc) } }],
      failure: [],
    });
    if (!r.succeeded) throw new UserError(`a service named ${spec.name} exists already; pick another name or delete it first`, 409, 'exists');
    return view(svc);
  });
  api.route('GET', '/v1/services', async () => {
    await db.linearize();
    return { services: db.store.range({ key: SERVICES_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => view(JSON.parse(kv.value) as Service)) };
  });
  api.route('GET', '/v1/service', async (req) => view((await get(req.query.get('name') ?? '')).svc));
  api.route('POST', '/v1/services/scale', async (req) => {
    const { name, replicas } = parseBody(scaleBody, req.body);
    const { svc } = await get(name);
    const why = SERVICE_TYPES[svc.spec.type].cannotScale(svc.spec, replicas);
    if (why) throw new UserError(why, 400, 'cannot_scale');
    return transition(name, ['ACTIVE'], 'SCALING', `to ${replicas} members`, (s) => ({ ...s, spec: { ...s.spec, replicas } }));
  });
  api.route('POST', '/v1/services/upgrade', async (req) => {
    const { name, image } = parseBody(upgradeBody, req.body);
    return transition(name, ['ACTIVE'], 'UPGRADING', `to ${image}, one member at a time`, (s) => ({ ...s, spec: { ...s.spec, image } }));
  });
  api.route('POST', '/v1/services/stop', async (req) =>
    transition(parseBody(nameBody, req.body).name, ['ACTIVE', 'INITIALIZING'], 'STOPPING', 'stopping members'),
  );
  api.route('POST', '/v1/services/start', async (req) => transition(parseBody(nameBody, req.body).name, ['STOPPED'], 'INITIALIZING', 'starting members'));
  api.route('POST', '/v1/services/delete', async (req) => {
    const name = parseBody(nameBody, req.body).name;
    const { svc } = await get(name);
    return transition(name, [svc.status], 'DELETING', 'stopping members');
  });
}
