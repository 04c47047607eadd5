// HTTP routes of the controldb: /v1/kv, /v1/lease and /v1/watch.
import { z } from 'zod';
import { RawResponse, StreamResponse, type ApiRequest, type ApiServer } from '../api/server.ts';
import { parseBody } from '../api/validate.ts';
import { UserError } from '../errors.ts';
import type { ControlDb } from './controldb.ts';
import { CompactedError } from './store.ts';
import { SECRET_PREFIX } from '../security/tokens.ts';
import { deleteSchema, putSchema, rangeSchema, txnSchema, type KeyValue, type TxnRequest } from './types.ts';

export const FORWARDED_HEADER = 'x-firecampd-forwarded';

const requestId = z.string().min(1).max(128).optional();
const rangeBody = rangeSchema.extend({ serializable: z.boolean().default(false) }).strict();
const putBody = putSchema.extend({ request_id: requestId }).strict();
const deleteBody = deleteSchema.extend({ request_id: requestId }).strict();
const ttlBody = z.object({ ttl: z.number().int() }).strict();
const leaseBody = z.object({ id: z.number().int().positive() }).strict();

const forwarded = (req: ApiRequest) => req.raw.headers[FORWARDED_HEADER] === '1';

// The cluster's secrets (CA key, token digests) live in the store but are never served by the KV API.
const isSecret = (key: string) => key.startsWith(SECRET_PREFIX);
const covers = (key: string, prefix: boolean) => isSecret(key) || (prefix && SECRET_PREFIX.startsWith(key));
const visible = (kv: KeyValue) => !isSecret(kv.key);

function refuseSecret(key: string, prefix: boolean): void {
  if (covers(key, prefix)) throw new UserError(`keys under ${SECRET_PREFIX} are reserved for the cluster's secrets`, 403, 'forbidden');
}

function refuseSecretInTxn(txn: TxnRequest): void {
  for (const c of txn.compare) refuseSecret(c.key, false);
  for (const op of [...txn.success, ...txn.failure]) {
    if ('put' in op) refuseSecret(op.put.key, false);
    else if ('delete' in op) refuseSecret(op.delete.key, op.delete.prefix);
    else refuseSecret(op.range.key, op.range.prefix);
  }
}

export function registerKvRoutes(api: ApiServer, db: ControlDb): void {
  api.route('POST', '/v1/kv/range', async (req) => {
    const { serializable, ...range } = parseBody(rangeBody, req.body);
    if (isSecret(range.key)) refuseSecret(range.key, false);
    const r = await db.range(range, serializable);
    const kvs = r.kvs.filter(visible);
    return { ...r, kvs, count: r.count - (r.kvs.length - kvs.length) };
  });
  api.route('POST', '/v1/kv/put', async (req) => {
    const { request_id, ...put } = parseBody(putBody, req.body);
    refuseSecret(put.key, false);
    const txn: TxnRequest = { compare: [], success: [{ put }], failure: [], ...(request_id ? { request_id } : {}) };
    const r = await db.txn(txn, forwarded(req));
    const prev = (r.responses[0] as { put: { prev_kv?: KeyValue } }).put.prev_kv;
    return { revision: r.revision, ...(prev ? { prev_kv: prev } : {}) };
  });
  api.route('POST', '/v1/kv/delete', async (req) => {
    const { request_id, ...del } = parseBody(deleteBody, req.body);
    refuseSecret(del.key, del.prefix);
    const txn: TxnRequest = { compare: [], success: [{ delete: del }], failure: [], ...(request_id ? { request_id } : {}) };
    const r = await db.txn(txn, forwarded(req));
    return { revision: r.revision, deleted: (r.responses[0] as { delete: { deleted: number } }).delete.deleted };
  });
  api.route('POST', '/v1/kv/txn', (req) => {
    const txn = parseBody(txnSchema, req.body);
    // Nodes forward the cluster's own writes of secrets (tokens, the CA) to the leader through here.
    if (req.caller.kind !== 'node') refuseSecretInTxn(txn);
    return db.txn(txn, forwarded(req));
  });

  api.route('POST', '/v1/lease/grant', (req) => db.leaseGrant(parseBody(ttlBody, req.body).ttl, forwarded(req)));
  api.route('POST', '/v1/lease/keepalive', (req) => db.leaseKeepAlive(parseBody(leaseBody, req.body).id, forwarded(req)));
  api.route('POST', '/v1/lease/revoke', (req) => db.leaseRevoke(parseBody(leaseBody, req.body).id, forwarded(req)));
  api.route('GET', '/v1/lease/list', () => ({
    leases: db.store.leases().map((l) => ({ ...l, keys: db.store.leaseKeys(l.id) })),
  }));

  // The state machine as a SQLite image, taken after a linearizable barrier so
  // that it holds every write acknowledged before the request.
  api.route('GET', '/v1/snapshot', async () => {
    await db.linearize();
    return new RawResponse('application/octet-stream', Buffer.from(db.store.snapshot()));
  });

  // Watch: newline-delimited JSON, one line per revision, and a progress line
  // every few seconds so that both ends notice a dead connection.
  api.route('GET', '/v1/watch', (req) => {
    const key = req.query.get('key');
    if (!key) throw new UserError('invalid request: key is required (use prefix=true to watch a prefix)', 400, 'invalid_request');
    const prefix = req.query.get('prefix') === 'true' || req.query.get('prefix') === '1';
    if (isSecret(key)) refuseSecret(key, false);
    const from = Number(req.query.get('from') ?? 0);
    if (!Number.isInteger(from) || from < 0) throw new UserError('invalid request: from must be a revision number', 400, 'invalid_request');
    // Check for compaction before the stream starts, so the client gets a plain error.
    try {
      db.store.events(from > 0 ? from : db.store.revision() + 1, key, prefix);
    } catch (err) {
      if (err instanceof CompactedError) throw new UserError(err.message, 410, 'compacted');
      throw err;
    }
    return new StreamResponse('application/x-ndjson', (res) => {
      const cancel = db.watch(key, prefix, from, (revision, all) => {
        const events = all.filter((e) => visible(e.kv));
        if (events.length > 0) res.write(JSON.stringify({ revision, events }) + '\n');
      });
      const progress = setInterval(() => res.write(JSON.stringify({ progress: db.store.revision() }) + '\n'), 5000);
      return () => {
        clearInterval(progress);
        cancel();
      };
    });
  });
}
