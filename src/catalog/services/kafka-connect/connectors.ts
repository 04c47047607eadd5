// `firecampd service connector put|get|delete`: the connectors of a Kafka
// Connect service, passed to its workers' REST API from whichever node the
// request reaches. Any worker will do (a follower forwards a change to the
// group's leader); a worker that does not answer, or answers that the group
// is rebalancing, is followed by the next one until a deadline.
import { z } from 'zod';
import type { ApiServer } from '../../../api/server.ts';
import { parseBody } from '../../../api/validate.ts';
import type { ControlDb } from '../../../controldb/controldb.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import { placedMembers, readMembers, readSecrets } from '../../records.ts';
import { readService } from '../../service-records.ts';
import { noSuchService } from '../../types.ts';
import { connectRequest } from './kafka-connect.ts';

const connectorName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_" and "-", at most 128');
const putBody = z
  .object({ name: z.string().min(1), connector: connectorName, config: z.record(z.string(), z.string()) })
  .strict()
  .refine((b) => typeof b.config['connector.class'] === 'string', { message: 'the config names its connector.class' });
/** A service and one of its connectors: the body of a delete, the query of a get. */
const deleteBody = z.object({ name: z.string().min(1), connector: connectorName }).strict();

/** How long a request keeps trying the workers: a rebalance after a worker's restart takes some seconds. */
const DEADLINE_MS = 60_000;

export interface ConnectorView {
  name: string;
  config: Record<string, string>;
  /** The connector's and its tasks' state, as the workers report it (RUNNING, FAILED, …, with the worker that runs each). */
  status: {
    connector: { state: string; worker_id: string; trace?: string };
    tasks: { id: number; state: string; worker_id: string; trace?: string }[];
  } | null;
}

export function registerConnectorRoutes(api: ApiServer, db: ControlDb): void {
  /** A request to the service's workers; Connect's own error message on a 4xx other than a rebalance. */
  const call = async (service: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> => {
    await db.linearize();
    const svc = readService(db.store, service)?.value;
    if (!svc) throw noSuchService(service);
    if (svc.spec.type !== 'kafka-connect')
      throw new UserError(`${service} is a ${svc.spec.type} service: connectors are for kafka-connect services`, 400, 'wrong_type');
    const secrets = readSecrets(db.store, service)?.value ?? {};
    const specs = readMembers(db.store, service)
      .map((m) => m.value)
      .filter((m) => !m.stopped);
    const workers = placedMembers(db.store, specs);
    if (workers.length === 0) throw new UserError(`${service} has no running workers (see "firecampd service get ${service}")`, 409, 'not_running');
    const deadline = Date.now() + DEADLINE_MS;
    let last = '';
    for (let i = 0; Date.now() < deadline; i++) {
      const w = workers[i % workers.length];
      try {
        const res = await connectRequest(w.host, secrets.admin ?? '', method, path, { body, timeoutMs: 15_000 });
        // 409: the group is rebalancing; 5xx: the worker could not reach the leader or Kafka. Both pass.
        if (res.status !== 409 && res.status < 500) return res;
        last = `${w.spec.name} answered ${res.status}: ${(res.body as { message?: string } | null)?.message ?? ''}`;
      } catch (err) {
        last = `${w.spec.name}: ${errorMessage(err)}`;
      }
      if ((i + 1) % workers.length === 0) await new Promise((r) => setTimeout(r, 1000));
    }
    throw new UserError(`the workers of ${service} did not take the request within ${DEADLINE_MS / 1000} s; the last: ${last}`, 503, 'unavailable');
  };
  const refused = (r: { status: number; body: unknown }, what: string): UserError =>
    new UserError(`${what}: ${(r.body as { message?: string } | null)?.message ?? `HTTP ${r.status}`}`, r.status === 404 ? 404 : 400, 'connect_refused');
  const one = async (service: string, connector: string): Promise<ConnectorView> => {
    const path = `/connectors/${encodeURIComponent(connector)}`;
    const info = await call(service, 'GET', path);
    if (info.status !== 200) throw refused(info, `connector ${connector} of ${service}`);
    const status = await call(service, 'GET', `${path}/status`);
    return {
      name: connector,
      config: (info.body as { config: Record<string, string> }).config,
      status: status.status === 200 ? (status.body as ConnectorView['status']) : null,
    };
  };

  api.route('GET', '/v1/service/connectors', async (req) => {
    const service = req.query.get('name') ?? '';
    const r = await call(service, 'GET', '/connectors');
    if (r.status !== 200) throw refused(r, `the connectors of ${service}`);
    const names = (r.body as string[]).sort();
    return { name: service, connectors: await Promise.all(names.map((c) => one(service, c))) };
  });
  api.route('GET', '/v1/service/connector', async (req) => {
    const { name, connector } = parseBody(deleteBody, { name: req.query.get('name') ?? '', connector: req.query.get('connector') ?? '' });
    return one(name, connector);
  });
  // Made or changed: PUT /connectors/NAME/config does both.
  api.route('POST', '/v1/service/connector', async (req) => {
    const { name, connector, config } = parseBody(putBody, req.body);
    const r = await call(name, 'PUT', `/connectors/${encodeURIComponent(connector)}/config`, { ...config, name: connector });
    if (r.status !== 200 && r.status !== 201) throw refused(r, `connector ${connector} was not taken`);
    return { ...(await one(name, connector)), created: r.status === 201 };
  });
  api.route('POST', '/v1/service/connector/delete', async (req) => {
    const { name, connector } = parseBody(deleteBody, req.body);
    const r = await call(name, 'DELETE', `/connectors/${encodeURIComponent(connector)}`);
    if (r.status !== 204 && r.status !== 200) throw refused(r, `connector ${connector} was not deleted`);
    return { name, connector, deleted: true };
  });
}
