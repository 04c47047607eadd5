// What a backup part is on its target: the member's dump compressed and
// then encrypted with the cluster's backup key (AES-256-GCM), behind a small
// header. Sealed on the member's node before anything leaves it; the SHA-256
// of the sealed bytes goes into the manifest, so a restore checks a part
// before it opens it, and GCM's tag proves the key and the content.
//
//   "FCB2" | 12-byte IV | ciphertext | 16-byte GCM tag
//   plaintext: frames of (4-byte big-endian length | a Brotli stream of a block of the dump)
//
// Compression is what bounds a backup's speed (a core does about 120 MiB/s of
// table data at Brotli's quality 0, and gzip's fastest level half that): the
// dump is cut into blocks, each compressed on its own in libuv's threadpool,
// several at once, and framed in order; opening decompresses them the same way.
import crypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const MAGIC = Buffer.from('FCB2');
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

/** Bytes per block: large enough that a block compresses as well as the stream would. */
const BLOCK_BYTES = 4 << 20;
/** Blocks compressed (or decompressed) at once: the threadpool's threads, less one for file and socket work. */
const IN_FLIGHT = 3;
const BROTLI = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 0, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: BLOCK_BYTES } };
const brotli = promisify(zlib.brotliCompress);
const unbrotli = promisify(zlib.brotliDecompress);

/** Runs `work` on each block, IN_FLIGHT at once, and pushes what each gives in the blocks' order. */
abstract class BlockTransform extends Transform {
  private readonly pending: Promise<Buffer>[] = [];
  protected abstract work(block: Buffer): Promise<Buffer>;
  /** Start a block's work; wait for the oldest when IN_FLIGHT are under way. */
  protected async add(block: Buffer): Promise<void> {
    const started = this.work(block);
    started.catch(() => {}); // awaited in turn below; a failure is reported then
    this.pending.push(started);
    if (this.pending.length >= IN_FLIGHT) this.push(await this.pending.shift()!);
  }
  protected async drain(): Promise<void> {
    while (this.pending.length > 0) this.push(await this.pending.shift()!);
  }
}

/** Cuts the dump into blocks and frames each compressed block with its length. */
class Compress extends BlockTransform {
  private parts: Buffer[] = [];
  private size = 0;
  protected async work(block: Buffer): Promise<Buffer> {
    const z = await brotli(block, BROTLI);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(z.length);
    return Buffer.concat([head, z]);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    const cut = async () => {
      while (this.size >= BLOCK_BYTES) {
        const all = Buffer.concat(this.parts);
        this.parts = [all.subarray(BLOCK_BYTES)];
        this.size = all.length - BLOCK_BYTES;
        await this.add(all.subarray(0, BLOCK_BYTES));
      }
    };
    cut().then(() => cb(), cb);
  }
  override _flush(cb: TransformCallback): void {
    const rest = async () => {
      if (this.size > 0) await this.add(Buffer.concat(this.parts));
      await this.drain();
    };
    rest().then(() => cb(), cb);
  }
}

/** Reads the frames back and decompresses each block. */
class Decompress extends BlockTransform {
  /** What came in and is not a whole frame yet, as it came (copied once, when a frame is whole). */
  private parts: Buffer[] = [];
  private size = 0;
  protected work(block: Buffer): Promise<Buffer> {
    return unbrotli(block);
  }
  /** The first n bytes of what came in, taken out. */
  private takeBytes(n: number): Buffer {
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = all.length > n ? [all.subarray(n)] : [];
    this.size -= n;
    return all.subarray(0, n);
  }
  private frameBytes(): number | undefined {
    if (this.size < 4) return undefined;
    const head = this.parts[0].length >= 4 ? this.parts[0] : Buffer.concat(this.parts).subarray(0, 4);
    return 4 + head.readUInt32BE(0);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.parts.push(chunk);
    this.size += chunk.length;
    const frames = async () => {
      for (let n = this.frameBytes(); n !== undefined && this.size >= n; n = this.frameBytes()) await this.add(this.takeBytes(n).subarray(4));
    };
    frames().then(() => cb(), cb);
  }
  override _flush(cb: TransformCallback): void {
    if (this.size > 0) return cb(new Error('the backup part is cut short (a block is incomplete)'));
    this.drain().then(() => cb(), cb);
  }
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
      if (!this.head.subarray(0, MAGIC.length).equals(MAGIC)) return cb(new Error(`not a firecampd backup part (no ${MAGIC.toString()} header)`));
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
export const sealing = (key: string): [Transform, Transform] => [new Compress(), new Encrypt(keyBytes(key))];

/** The transforms from a sealed part back to the dump: decrypt, then decompress. */
export const opening = (key: string): [Transform, Transform] => [new Decrypt(keyBytes(key)), new Decompress()];

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
