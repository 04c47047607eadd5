// `service config NAME --allow`: a service's access list changed in place.
// Only the service's record changes (no rollout, no restart): every node
// that runs one of its members sees the record change and makes its table
// again.
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import { put } from '../catalog/records.ts';
import { readService } from '../catalog/service-records.ts';
import { noSuchService } from '../catalog/types.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { recordEvent } from '../events/events.ts';
import type { Logger } from '../log.ts';
import { parseAllow } from './allow.ts';
import { accessView } from './view.ts';

/** A new list, or "default": the networks of the nodes' addresses again. */
const allowBody = z.object({ name: z.string().min(1), allow: z.union([z.array(z.string().max(64)).max(256), z.literal('default')]) }).strict();

export function registerFirewallRoutes(api: ApiServer, db: ControlDb, log: Logger): void {
  api.route('POST', '/v1/services/allow', async (req) => {
    const b = parseBody(allowBody, req.body);
    const allow = b.allow === 'default' ? undefined : parseAllow(b.allow);
    await db.linearize();
    const stored = readService(db.store, b.name);
    if (!stored) throw noSuchService(b.name);
    const svc = stored.value;
    if (svc.status === 'DELETING') throw new UserError(`service ${b.name} is being deleted`, 409, 'deleting');
    const { allow: was, ...rest } = svc.spec;
    if (JSON.stringify(was) === JSON.stringify(allow)) return { name: b.name, access: accessView(db.store, svc.spec), changed: false };
    const spec = { ...rest, ...(allow ? { allow } : {}) };
    const r = await db.txn({
      compare: [{ key: stored.key, target: 'mod_revision', op: '=', value: stored.rev }],
      success: [put.service({ ...svc, spec, updated_at: new Date().toISOString() })],
      failure: [],
    });
    if (!r.succeeded) throw new UserError(`service ${b.name} changed meanwhile; try again`, 409, 'conflict');
    const access = accessView(db.store, spec);
    await recordEvent(db, log, {
      kind: 'access',
      service: b.name,
      reason: `access list now ${access.allow.join(', ')}${access.default ? ' (the default)' : ''}`,
    });
    return { name: b.name, access, changed: true };
  });
}
