// HTTP routes for services: create, list, get, delete. Writes go through the
// controldb; the catalog on the leader does the rest.
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { MEMBERS_PREFIX, STATUS_PREFIX, memberSpecSchema, type MemberStatus } from '../agent/members.ts';
import { SERVICES_PREFIX, serviceKey, serviceSpecSchema, type Service } from './types.ts';

const nameBody = z.object({ name: z.string().min(1) }).strict();
const scaleBody = z.object({ name: z.string().min(1), replicas: z.number().int().min(1).max(32) }).strict();

export interface ServiceView extends Service {
  members: { name: string; node: string; epoch: number; ip: string | null; dns: string | null; state: string; message: string }[];
}

export function registerServiceRoutes(api: ApiServer, db: ControlDb): void {
  const view = (svc: Service): ServiceView => {
    const name = svc.spec.name;
    const members = db.store.range({ key: `${MEMBERS_PREFIX}${name}/`, prefix: true, limit: 0 }).kvs.map((kv) => {
      const m = memberSpecSchema.parse(JSON.parse(kv.value));
      const st = db.store.get(`${STATUS_PREFIX}${name}/${m.name}`);
      const status = st ? (JSON.parse(st.value) as MemberStatus) : undefined;
      const current = status && status.epoch === m.epoch && status.node === m.node;
      return { name: m.name, node: m.node, epoch: m.epoch, ip: m.ip ?? null, dns: m.dnsName ?? null, state: current ? status.state : 'pending', message: current ? (status.message ?? '') : '' };
    });
    return { ...svc, members };
  };
  const get = async (name: string): Promise<Service> => {
    await db.linearize();
    const kv = db.store.get(serviceKey(name));
    if (!kv) throw new UserError(`no service named ${name} (see "firecampd service list")`, 404, 'not_found');
    return JSON.parse(kv.value) as Service;
  };

  api.route('POST', '/v1/services', async (req) => {
    const spec = parseBody(serviceSpecSchema, req.body);
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
  api.route('GET', '/v1/service', async (req) => view(await get(req.query.get('name') ?? '')));
  api.route('POST', '/v1/services/scale', async (req) => {
    const { name, replicas } = parseBody(scaleBody, req.body);
    const svc = await get(name);
    if (svc.status !== 'ACTIVE') throw new UserError(`service ${name} is ${svc.status}; scale it once it is ACTIVE`, 409, 'busy');
    const next: Service = { ...svc, spec: { ...svc.spec, replicas }, status: 'SCALING', message: `to ${replicas} members`, updated_at: new Date().toISOString() };
    await db.txn({ compare: [], success: [{ put: { key: serviceKey(name), value: JSON.stringify(next) } }], failure: [] });
    return view(next);
  });
  api.route('POST', '/v1/services/delete', async (req) => {
    const name = parseBody(nameBody, req.body).name;
    const svc = await get(name);
    const next: Service = { ...svc, status: 'DELETING', message: 'stopping members', updated_at: new Date().toISOString() };
    await db.txn({ compare: [], success: [{ put: { key: serviceKey(name), value: JSON.stringify(next) } }], failure: [] });
    return view(next);
  });
}
