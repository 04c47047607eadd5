// Join tokens and API tokens. A token reads
//
//   FCJ1-<sha256 of the cluster CA>-<id>.<secret>   (join)
//   FCA1-<sha256 of the cluster CA>-<id>.<secret>   (API)
//
// The CA digest lets whoever holds a token check that it talks to the right
// cluster before sending the secret (as Docker Swarm's SWMTKN and k3s' K10
// tokens do). The cluster keeps only a SHA-256 of each secret, under a key
// prefix the KV API refuses to serve. An operator-chosen bootstrap token
// (`--token` on the first node) may be any string: it has the id "bootstrap".
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UserError } from '../errors.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import type { RequestOp } from '../controldb/types.ts';
import type { CaPem } from './pki.ts';

export const SECRET_PREFIX = '/_cluster/secret/';
const CA_KEY = `${SECRET_PREFIX}ca`;
const TOKENS_PREFIX = `${SECRET_PREFIX}tokens/`;
export const BOOTSTRAP_TOKEN_ID = 'bootstrap';

export type TokenKind = 'join' | 'api';

interface TokenRecord {
  id: string;
  kind: TokenKind;
  /** SHA-256 of the secret, hex. */
  hash: string;
  created_at: string;
  /** Milliseconds since the epoch; absent = never expires. */
  expires_at?: number;
  description?: string;
  /** The cluster's standing join token, which `token join` prints again; only it keeps its full text. */
  default_join?: string;
}

export interface TokenInfo {
  id: string;
  kind: TokenKind;
  created_at: string;
  expires_at: string | null;
  description: string;
  default: boolean;
}

export interface ParsedToken {
  kind?: TokenKind;
  caDigest?: string;
  id: string;
  secret: string;
}

const FORMAT = /^FC([JA])1-([0-9a-f]{64})-([0-9a-f]{16})\.([A-Za-z0-9_-]{20,})$/;

export function parseToken(token: string): ParsedToken {
  const m = FORMAT.exec(token.trim());
  if (!m) return { id: BOOTSTRAP_TOKEN_ID, secret: token };
  return { kind: m[1] === 'J' ? 'join' : 'api', caDigest: m[2], id: m[3], secret: m[4] };
}

function formatToken(kind: TokenKind, caDigest: string, id: string, secret: string): string {
  return `FC${kind === 'join' ? 'J' : 'A'}1-${caDigest}-${id}.${secret}`;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export type Validation = { ok: true; id: string } | { ok: false; reason: string };

/** The cluster CA with its key, from a replica's store (every node has it: agents sign their members' certificates). */
export function readClusterCa(store: { get(key: string): { value: string } | undefined }): CaPem | undefined {
  const kv = store.get(CA_KEY);
  return kv ? (JSON.parse(kv.value) as CaPem) : undefined;
}

export class Tokens {
  private hasCa = false;
  /**
   * Token records by id, as the local replica has them: every API request looks one up. Kept in step by the
   * store's events (a revoke takes effect here when it is applied, as before); a restored snapshot empties it.
   */
  private readonly records = new Map<string, TokenRecord>();
  private recordsAfterRestore = 0;
  private readonly verified = new WeakMap<TokenRecord, Buffer>();

  constructor(
    private readonly db: ControlDb,
    /** The cluster CA's digest, which tokens carry (parsed once by the caller: every API request compares it). */
    private readonly caDigest: string,
  ) {
    db.store.onEvents((_rev, events) => {
      for (const e of events) if (e.kv.key.startsWith(TOKENS_PREFIX)) this.records.delete(e.kv.key.slice(TOKENS_PREFIX.length));
    });
  }

  /** The cluster CA with its key, from the local replica. */
  ca(): CaPem | undefined {
    return readClusterCa(this.db.store);
  }

  /** Check a token against the local replica. */
  validate(token: string, kind: TokenKind): Validation {
    const t = parseToken(token);
    if (t.kind && t.kind !== kind) {
      return {
        ok: false,
        reason: kind === 'join' ? 'this is an API token, not a join token (get one with "firecampd token join")' : 'a join token cannot be used for the API',
      };
    }
    if (t.caDigest && t.caDigest !== this.caDigest) return { ok: false, reason: 'the token belongs to another cluster (its CA digest does not match)' };
    const rec = this.record(t.id);
    if (!rec || rec.kind !== kind || !this.secretMatches(rec, t.secret)) {
      return { ok: false, reason: 'unknown or revoked token' };
    }
    if (rec.expires_at !== undefined && rec.expires_at <= Date.now()) return { ok: false, reason: 'the token has expired' };
    return { ok: true, id: rec.id };
  }

  /**
   * A kept-alive client sends the same token with every request: a secret that matched a record is kept beside that
   * record (and goes when the record is replaced or dropped), so that the next request compares it rather than hash it.
   */
  private secretMatches(rec: TokenRecord, secret: string): boolean {
    const given = Buffer.from(secret);
    const known = this.verified.get(rec);
    if (known && known.length === given.length && timingSafeEqual(known, given)) return true;
    if (!timingSafeEqual(Buffer.from(rec.hash, 'hex'), Buffer.from(sha256(secret), 'hex'))) return false;
    this.verified.set(rec, given);
    return true;
  }

  private record(id: string): TokenRecord | undefined {
    if (this.recordsAfterRestore !== this.db.store.restores) {
      this.records.clear();
      this.recordsAfterRestore = this.db.store.restores;
    }
    const cached = this.records.get(id);
    if (cached) return cached;
    const kv = this.db.store.get(TOKENS_PREFIX + id);
    if (!kv) return undefined; // not kept: unknown ids are anyone's to make up
    const rec = JSON.parse(kv.value) as TokenRecord;
    this.records.set(id, rec);
    return rec;
  }

  list(): TokenInfo[] {
    return this.db.store.range({ key: TOKENS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => {
      const r = JSON.parse(kv.value) as TokenRecord;
      return {
        id: r.id,
        kind: r.kind,
        created_at: r.created_at,
        expires_at: r.expires_at === undefined ? null : new Date(r.expires_at).toISOString(),
        description: r.description ?? '',
        default: r.default_join !== undefined,
      };
    });
  }

  async create(kind: TokenKind, opts: { ttlSeconds?: number; description?: string } = {}): Promise<{ id: string; token: string; expires_at: string | null }> {
    const { record, token } = this.mint(kind, opts);
    await this.db.txn({ compare: [], success: [this.put(record)], failure: [] });
    return { id: record.id, token, expires_at: record.expires_at === undefined ? null : new Date(record.expires_at).toISOString() };
  }

  /** Delete a token; returns the revision at which it stopped working. */
  async revoke(id: string): Promise<number> {
    const r = await this.db.txn({
      compare: [{ key: TOKENS_PREFIX + id, target: 'exists', op: '=', value: true }],
      success: [{ delete: { key: TOKENS_PREFIX + id, prefix: false } }],
      failure: [],
    });
    if (!r.succeeded) throw new UserError(`no token with id ${id} (see "firecampd token list")`, 404, 'not_found');
    return r.revision;
  }

  /** The standing join token, made at bootstrap and replaced by `rotate`. */
  joinToken(): string {
    const rec = this.defaultJoin();
    if (!rec) throw new UserError('the cluster has no join token yet; retry in a moment', 503, 'unavailable');
    return rec.default_join!;
  }

  private defaultJoin(): TokenRecord | undefined {
    return this.db.store
      .range({ key: TOKENS_PREFIX, prefix: true, limit: 0 })
      .kvs.map((kv) => JSON.parse(kv.value) as TokenRecord)
      .find((r) => r.default_join !== undefined);
  }

  /** Replace the standing join token: the old one stops working, other join tokens stay. */
  async rotate(): Promise<{ id: string; token: string; revision: number }> {
    const old = this.defaultJoin();
    const { record, token } = this.mint('join', {});
    record.default_join = token;
    const ops: RequestOp[] = [this.put(record)];
    if (old) ops.push({ delete: { key: TOKENS_PREFIX + old.id, prefix: false } });
    const r = await this.db.txn({ compare: [], success: ops, failure: [] });
    return { id: record.id, token, revision: r.revision };
  }

  /**
   * Run once by the first leader: store the CA, a standing join token and the
   * operator's bootstrap token, each only if the cluster has none yet.
   */
  async initialize(ca: CaPem, bootstrapToken: string | undefined): Promise<void> {
    const join = this.mint('join', {});
    join.record.default_join = join.token;
    const ops: RequestOp[] = [{ put: { key: CA_KEY, value: JSON.stringify(ca) } }, this.put(join.record)];
    if (bootstrapToken) {
      ops.push(
        this.put({
          id: BOOTSTRAP_TOKEN_ID,
          kind: 'api',
          hash: sha256(bootstrapToken),
          created_at: new Date().toISOString(),
          description: 'given with --token at bootstrap',
        }),
      );
    }
    await this.db.txn({ compare: [{ key: CA_KEY, target: 'exists', op: '=', value: false }], success: ops, failure: [] });
  }

  initialized(): boolean {
    // Asked on every API request: once the cluster has its CA it keeps it, so stop reading it (a few KiB of JSON) then.
    this.hasCa ||= this.db.store.get(CA_KEY) !== undefined;
    return this.hasCa;
  }

  private mint(kind: TokenKind, opts: { ttlSeconds?: number; description?: string }): { record: TokenRecord; token: string } {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const record: TokenRecord = { id, kind, hash: sha256(secret), created_at: new Date().toISOString() };
    if (opts.ttlSeconds !== undefined) record.expires_at = Date.now() + opts.ttlSeconds * 1000;
    if (opts.description) record.description = opts.description;
    return { record, token: formatToken(kind, this.caDigest, id, secret) };
  }

  private put(r: TokenRecord): RequestOp {
    return { put: { key: TOKENS_PREFIX + r.id, value: JSON.stringify(r) } };
  }
}
