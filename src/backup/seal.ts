// What a backup part is on its target: the member's dump compressed (gzip)
// and then encrypted with the cluster's backup key (AES-256-GCM), behind a
// small header. Sealed on the member's node before anything leaves it; the
// SHA-256 of the sealed bytes goes into the manifest, so a restore checks a
// part before it opens it, and GCM's tag proves the key and the content.
//
//   "FCB1" | 12-byte IV | ciphertext | 16-byte GCM tag
import crypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';

const MAGIC = Buffer.from('FCB1');
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

/** A fresh cluster backup key. */
export const newBackupKey = (): string => crypto.randomBytes(KEY_BYTES).toString('base64');

export function keyBytes(key: string): Buffer {
  const b = Buffer.from(key, 'base64');
  if (b.length !== KEY_BYTES) throw new Error(`a backup key is ${KEY_BYTES} bytes of base64; this one is ${b.length}`);
  return b;
}

/** Counts and hashes what passes through. */
export class Tally extends Transform {
  bytes = 0;
  private readonly hash = crypto.createHash('sha256');
  private hex?: string;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  /** The SHA-256 of all that passed, once it has all passed. */
  digest(): string {
    return (this.hex ??= this.hash.digest('hex'));
  }
}

/** Encrypts with the header in front and the tag behind. */
class Encrypt extends Transform {
  private readonly cipher: crypto.CipherGCM;
  constructor(key: Buffer) {
    super();
    const iv = crypto.randomBytes(IV_BYTES);
    this.cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
    this.push(Buffer.concat([MAGIC, iv]));
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    cb(null, this.cipher.update(chunk));
  }
  override _flush(cb: TransformCallback): void {
    this.push(this.cipher.final());
    cb(null, this.cipher.getAuthTag());
  }
}

/** Decrypts, holding back the last 16 bytes (the tag) until the end; fails at the end if the key or a byte is wrong. */
class Decrypt extends Transform {
  private head = Buffer.alloc(0);
  private decipher?: crypto.DecipherGCM;
  private tail = Buffer.alloc(0);
  constructor(private readonly key: Buffer) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.decipher) {
      this.head = Buffer.concat([this.head, chunk]);
      if (this.head.length < MAGIC.length + IV_BYTES) return cb();
      if (!this.head.subarray(0, MAGIC.length).equals(MAGIC)) return cb(new Error('not a firecampd backup part (no FCB1 header)'));
      this.decipher = crypto.createDecipheriv('aes-256-gcm', this.key, this.head.subarray(MAGIC.length, MAGIC.length + IV_BYTES));
      chunk = this.head.subarray(MAGIC.length + IV_BYTES);
    }
    const all = Buffer.concat([this.tail, chunk]);
    const cut = Math.max(0, all.length - TAG_BYTES);
    this.tail = all.subarray(cut);
    cb(null, this.decipher.update(all.subarray(0, cut)));
  }
  override _flush(cb: TransformCallback): void {
    if (!this.decipher || this.tail.length !== TAG_BYTES) return cb(new Error('the backup part is cut short'));
    this.decipher.setAuthTag(this.tail);
    try {
      cb(null, this.decipher.final());
    } catch {
      cb(new Error("the backup part does not open with this cluster's backup key, or it was changed (its authentication tag does not match)"));
    }
  }
}

/** The transforms from a dump to its sealed part: compress, then encrypt. */
export const sealing = (key: string): [Transform, Transform] => [zlib.createGzip({ level: 1 }), new Encrypt(keyBytes(key))];

/** The transforms from a sealed part back to the dump: decrypt, then decompress. */
export const opening = (key: string): [Transform, Transform] => [new Decrypt(keyBytes(key)), zlib.createGunzip()];

/** A small value (a service's secrets in a manifest) sealed whole, as base64. */
export function sealBytes(key: string, data: Buffer): string {
  const iv = crypto.randomBytes(IV_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyBytes(key), iv);
  return Buffer.concat([MAGIC, iv, cipher.update(data), cipher.final(), cipher.getAuthTag()]).toString('base64');
}

export function openBytes(key: string, sealed: string): Buffer {
  const b = Buffer.from(sealed, 'base64');
  if (b.length < MAGIC.length + IV_BYTES + TAG_BYTES || !b.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error('not a sealed value');
  const decipher = crypto.createDecipheriv('aes-256-gcm', keyBytes(key), b.subarray(MAGIC.length, MAGIC.length + IV_BYTES));
  decipher.setAuthTag(b.subarray(b.length - TAG_BYTES));
  return Buffer.concat([decipher.update(b.subarray(MAGIC.length + IV_BYTES, b.length - TAG_BYTES)), decipher.final()]);
}
