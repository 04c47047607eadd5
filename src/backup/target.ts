// Where backups are kept. A target is named by a URI: `dir:/path`, a
// directory (on a cluster of several nodes, storage every node mounts), or
// `s3://bucket/prefix`, a bucket of any S3-compatible store, whose endpoint,
// region and credentials the cluster keeps as a secret per bucket. Each
// backup is a folder of its parts and its manifest, so a cluster that never
// saw the one that made them can list and restore them.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { commitFile } from '../fsync.ts';
import type { RecordStore } from '../catalog/records.ts';
import { SECRET_PREFIX } from '../security/tokens.ts';

/** An object on a target, as a listing shows it. */
export interface TargetObject {
  key: string;
  bytes: number;
  /** When it was written: for an archived log file, an upper bound of the time of what it holds. */
  modified: Date;
}

export interface BackupTarget {
  readonly uri: string;
  /** Write an object from a stream; it appears whole or not at all. */
  put(key: string, from: Readable): Promise<void>;
  get(key: string): Readable;
  /** The objects under a prefix, by key. */
  list(prefix: string): Promise<TargetObject[]>;
  /** Remove every object under a prefix; idempotent. */
  deletePrefix(prefix: string): Promise<void>;
  /** Whether the storage is only this node's own (a directory no other node mounts would die with the node). */
  readonly local: boolean;
}

/** A directory target: objects are files, written to a temporary name, fsynced and renamed into place. */
export class DirTarget implements BackupTarget {
  readonly local = true;
  constructor(readonly root: string) {}
  get uri(): string {
    return `dir:${this.root}`;
  }
  private file(key: string): string {
    const f = path.join(this.root, key);
    if (!f.startsWith(this.root + path.sep)) throw new Error(`backup object ${key} is outside ${this.root}`);
    return f;
  }
  async put(key: string, from: Readable): Promise<void> {
    const file = this.file(key);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.partial`;
    try {
      await pipeline(from, fs.createWriteStream(tmp));
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    commitFile(tmp, file);
  }
  get(key: string): Readable {
    return fs.createReadStream(this.file(key));
  }
  list(prefix: string): Promise<TargetObject[]> {
    const base = path.join(this.root, prefix);
    const out: TargetObject[] = [];
    const visit = (p: string) => {
      const st = fs.statSync(p, { throwIfNoEntry: false });
      if (st?.isDirectory()) for (const e of fs.readdirSync(p)) visit(path.join(p, e));
      else if (st && !p.endsWith('.partial')) out.push({ key: path.relative(this.root, p), bytes: st.size, modified: st.mtime });
    };
    // A prefix is a folder here, or the start of names in one.
    if (prefix === '' || prefix.endsWith('/')) visit(base);
    else if (fs.existsSync(path.dirname(base))) for (const e of fs.readdirSync(path.dirname(base))) visit(path.join(path.dirname(base), e));
    return Promise.resolve(out.filter((o) => o.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)));
  }
  deletePrefix(prefix: string): Promise<void> {
    fs.rmSync(path.join(this.root, prefix), { recursive: true, force: true });
    return Promise.resolve();
  }
}

/** How this cluster reaches an S3 bucket: kept as a secret per bucket (`backup target set`), never served by the KV API. */
export const s3AccessSchema = z
  .object({
    /** An S3-compatible store's URL; none: AWS S3 itself. */
    endpoint: z.string().url().optional(),
    region: z.string().min(1),
    accessKeyId: z.string().min(1),
    secretAccessKey: z.string().min(1),
  })
  .strict();
export type S3Access = z.infer<typeof s3AccessSchema>;
export const s3AccessKey = (bucket: string) => `${SECRET_PREFIX}backup-s3/${bucket}`;

/** `s3://bucket/prefix` in parts; throws naming the form on anything else. */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(uri);
  if (!m) throw new UserError(`backup target ${uri}: an S3 target is s3://bucket/prefix (a bucket name of 3-63 lowercase letters, digits, dots and dashes)`);
  const prefix = (m[2] ?? '').replace(/\/+$/, '');
  return { bucket: m[1], prefix: prefix ? `${prefix}/` : '' };
}

/** A bucket (under a prefix): objects as S3 objects, uploaded in parts as they stream; an upload cut short leaves no object. */
export class S3Target implements BackupTarget {
  readonly local = false;
  private client?: Promise<S3Client>;
  constructor(
    readonly uri: string,
    private readonly bucket: string,
    private readonly prefix: string,
    private readonly access: S3Access,
  ) {}

  /** The SDK is loaded on first use: most nodes of most clusters never talk to a bucket. */
  private s3(): Promise<S3Client> {
    this.client ??= import('@aws-sdk/client-s3').then(
      ({ S3Client }) =>
        new S3Client({
          region: this.access.region,
          ...(this.access.endpoint ? { endpoint: this.access.endpoint, forcePathStyle: true } : {}),
          credentials: { accessKeyId: this.access.accessKeyId, secretAccessKey: this.access.secretAccessKey },
          maxAttempts: 3,
          // Checksums only where S3 requires them: S3-compatible stores do not all know the newer checksum headers,
          // and every part carries its own SHA-256 and AES-GCM tag anyway.
          requestChecksumCalculation: 'WHEN_REQUIRED',
          responseChecksumValidation: 'WHEN_REQUIRED',
        }),
    );
    return this.client;
  }

  async put(key: string, from: Readable): Promise<void> {
    const [{ Upload }, client] = await Promise.all([import('@aws-sdk/lib-storage'), this.s3()]);
    // 16 MiB parts, two in flight: a bounded buffer whatever the object's size.
    await new Upload({ client, params: { Bucket: this.bucket, Key: this.prefix + key, Body: from }, partSize: 16 << 20, queueSize: 2 }).done();
  }

  get(key: string): Readable {
    // A stream now, the object's body once the request answers: callers pipe it at once.
    return Readable.from(this.body(key));
  }
  private async *body(key: string): AsyncGenerator<Buffer> {
    const [{ GetObjectCommand }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    const r = await client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    for await (const chunk of r.Body as Readable) yield chunk as Buffer;
  }

  async list(prefix: string): Promise<TargetObject[]> {
    const [{ paginateListObjectsV2 }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    const out: TargetObject[] = [];
    for await (const page of paginateListObjectsV2({ client }, { Bucket: this.bucket, Prefix: this.prefix + prefix })) {
      for (const o of page.Contents ?? [])
        // Keys ending in "/" are folder markers some stores list (S3Proxy on a filesystem): never an object of ours.
        if (o.Key && !o.Key.endsWith('/')) out.push({ key: o.Key.slice(this.prefix.length), bytes: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async deletePrefix(prefix: string): Promise<void> {
    const [{ DeleteObjectCommand }, client] = await Promise.all([import('@aws-sdk/client-s3'), this.s3()]);
    // One request per object, eight at a time: a batch delete needs a checksum header that not every S3-compatible store takes.
    const keys = (await this.list(prefix)).map((o) => o.key);
    for (let i = 0; i < keys.length; i += 8)
      await Promise.all(keys.slice(i, i + 8).map((k) => client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + k }))));
  }

  /** Whether the bucket takes these credentials: a small object written, read back and removed; throws naming what the store answered. */
  async probe(): Promise<void> {
    const key = `.firecampd-probe-${process.pid}-${Date.now()}`;
    try {
      await this.put(key, Readable.from([Buffer.from('probe')]));
      for await (const _ of this.get(key));
      await this.deletePrefix(key);
    } catch (err) {
      const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
      const what = [e.name, e.$metadata?.httpStatusCode, e.message].filter(Boolean).join(' ');
      throw new UserError(
        `backup target ${this.uri}: bucket ${this.bucket}${this.access.endpoint ? ` at ${this.access.endpoint}` : ''} refused a test object (${what}): check the bucket's name, --endpoint, --region and the credentials`,
        400,
        'target_refused',
      );
    }
  }
}

/** The target a URI names; throws, naming what a target looks like, on anything else. */
export function openTarget(uri: string, store: RecordStore, access?: S3Access): BackupTarget {
  if (uri.startsWith('dir:')) {
    const p = uri.slice('dir:'.length);
    if (!path.isAbsolute(p)) throw new UserError(`backup target ${uri}: a directory target is dir:/absolute/path`);
    return new DirTarget(path.normalize(p));
  }
  if (uri.startsWith('s3:')) {
    const { bucket, prefix } = parseS3Uri(uri);
    const kv = access ? undefined : store.get(s3AccessKey(bucket));
    const a = access ?? (kv ? s3AccessSchema.parse(JSON.parse(kv.value)) : undefined);
    if (!a)
      throw new UserError(
        `backup target ${uri}: this cluster has no credentials for bucket ${bucket}: give them once with "firecampd backup target set ${uri} --endpoint URL --region R --access-key-id ID --secret-access-key KEY"`,
        409,
        'no_credentials',
      );
    return new S3Target(uri, bucket, prefix, a);
  }
  const scheme = /^([a-z0-9+.-]+):/i.exec(uri)?.[1];
  throw new UserError(
    `backup target ${uri}: ${scheme ? `no target of scheme ${scheme}:` : 'not a target URI'}; give dir:/path (storage every node mounts, on a cluster of several nodes) or s3://bucket/prefix`,
  );
}
