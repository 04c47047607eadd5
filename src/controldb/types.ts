// The controldb's request and response shapes, with the schemas that check
// what arrives over the API. Semantics follow etcd's v3 KV: every key has a
// create_revision, mod_revision and version; the store has one revision.
import { z } from 'zod';

export const MAX_KEY_BYTES = 4096;
export const MAX_VALUE_BYTES = 256 * 1024;
export const MAX_TXN_OPS = 128;

const key = z
  .string()
  .min(1, 'key must not be empty')
  .refine((k) => Buffer.byteLength(k) <= MAX_KEY_BYTES, `key is longer than ${MAX_KEY_BYTES} bytes`);
const value = z.string().refine((v) => Buffer.byteLength(v) <= MAX_VALUE_BYTES, `value is larger than ${MAX_VALUE_BYTES} bytes`);

export const compareSchema = z
  .object({
    key,
    target: z.enum(['value', 'version', 'mod_revision', 'create_revision', 'exists']),
    op: z.enum(['=', '!=', '<', '>']).default('='),
    // Revisions first, then writes first below: a union tries its options in turn, and a compare-and-set (a
    // mod_revision compare, then a put) is the request it sees most.
    value: z.union([z.number().int(), z.string(), z.boolean()]),
  })
  .strict()
  .superRefine((c, ctx) => {
    const want = c.target === 'value' ? 'string' : c.target === 'exists' ? 'boolean' : 'number';
    if (typeof c.value !== want) ctx.addIssue({ code: 'custom', message: `compare on ${c.target} needs a ${want} value` });
  });

export const rangeSchema = z.object({ key, prefix: z.boolean().default(false), limit: z.number().int().min(0).default(0) }).strict();
export const putSchema = z.object({ key, value, lease: z.number().int().positive().optional() }).strict();
export const deleteSchema = z.object({ key, prefix: z.boolean().default(false) }).strict();

export const requestOpSchema = z.union([
  z.object({ put: putSchema }).strict(),
  z.object({ delete: deleteSchema }).strict(),
  z.object({ range: rangeSchema }).strict(),
]);

export const txnSchema = z
  .object({
    compare: z.array(compareSchema).max(MAX_TXN_OPS).default([]),
    success: z.array(requestOpSchema).max(MAX_TXN_OPS).default([]),
    failure: z.array(requestOpSchema).max(MAX_TXN_OPS).default([]),
    /** Makes a retried request apply at most once. */
    request_id: z.string().min(1).max(128).optional(),
  })
  .strict();

export type Compare = z.infer<typeof compareSchema>;
export type RangeRequest = z.infer<typeof rangeSchema>;
export type PutRequest = z.infer<typeof putSchema>;
export type DeleteRequest = z.infer<typeof deleteSchema>;
export type RequestOp = z.infer<typeof requestOpSchema>;
export type TxnRequest = z.infer<typeof txnSchema>;

export interface KeyValue {
  key: string;
  value: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease: number;
}

export interface RangeResponse {
  kvs: KeyValue[];
  count: number;
  more: boolean;
}

export type ResponseOp = { range: RangeResponse } | { put: { prev_kv?: KeyValue } } | { delete: { deleted: number } };

export interface TxnResponse {
  succeeded: boolean;
  revision: number;
  responses: ResponseOp[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

/** What goes through the Raft log. */
export type Command =
  | { op: 'txn'; txn: TxnRequest }
  | { op: 'lease_grant'; id: number; ttl: number }
  | { op: 'lease_revoke'; id: number; request_id?: string }
  | { op: 'compact'; revision: number };

export type CommandResult = TxnResponse | { revision: number } | { error: string; code: string };
