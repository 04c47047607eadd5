// GET /v1/events: the cluster's event history, oldest first, of one service
// or all; `after` (the last key a reader saw) gives only what is newer, so a
// reader that follows asks again with it (`events --follow`, the console).
import type { ApiServer } from '../api/server.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { readEvents } from './events.ts';

export function registerEventRoutes(api: ApiServer, db: ControlDb): void {
  api.route('GET', '/v1/events', async (req) => {
    const limit = Number(req.query.get('limit') ?? 1000);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new UserError(`limit ${req.query.get('limit')}: a whole number from 1 to 100000`);
    const service = req.query.get('service') || undefined;
    const after = req.query.get('after') || undefined;
    await db.linearize();
    return readEvents(db, { limit, ...(service ? { service } : {}), ...(after ? { after } : {}) });
  });
}
