// The backup kit's parts that need no cluster: a part sealed (gzip, then
// AES-256-GCM with the cluster key) opens only with that key and only whole;
// a directory target writes each object whole or not at all; a target URI
// that is not one is refused with what one looks like.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, it } from 'node:test';
import { keyId, newBackupId } from '../src/backup/records.ts';
import { newBackupKey, openBytes, opening, sealBytes, sealing, Tally } from '../src/backup/seal.ts';
import { DirTarget, openTarget } from '../src/backup/target.ts';
import { tempDir } from './helpers/proc.ts';

async function seal(key: string, data: Buffer): Promise<{ sealed: Buffer; sha256: string }> {
  const chunks: Buffer[] = [];
  const tally = new Tally();
  await pipeline(
    Readable.from([data.subarray(0, 1000), data.subarray(1000)]),
    ...sealing(key),
    tally,
    new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }),
  );
  return { sealed: Buffer.concat(chunks), sha256: tally.digest() };
}

async function open(key: string, sealed: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(Readable.from([sealed]), ...opening(key), new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
  return Buffer.concat(chunks);
}

describe('backup kit', () => {
  const data = Buffer.concat([crypto.randomBytes(64 << 10), Buffer.alloc(256 << 10, 'redis')]);

  it('seals a dump so that it opens whole with the cluster key, and smaller than it was where it compresses', async () => {
    const key = newBackupKey();
    const { sealed, sha256 } = await seal(key, data);
    assert.equal(sealed.subarray(0, 4).toString(), 'FCB1');
    assert.ok(sealed.length < data.length, `sealed ${sealed.length} < dump ${data.length}`);
    assert.ok(!sealed.includes(Buffer.from('redisredisredis')), 'nothing of the dump shows through');
    assert.equal(sha256, crypto.createHash('sha256').update(sealed).digest('hex'));
    assert.deepEqual(await open(key, sealed), data);
  });

  it('refuses another key, a changed byte and a part cut short', async () => {
    const key = newBackupKey();
    const { sealed } = await seal(key, data);
    await assert.rejects(open(newBackupKey(), sealed), /does not open with this cluster's backup key, or it was changed/);
    const changed = Buffer.from(sealed);
    changed[Math.floor(changed.length / 2)] ^= 1;
    await assert.rejects(open(key, changed), /incorrect header check|invalid|does not open|changed/);
    await assert.rejects(open(key, sealed.subarray(0, 10)), /cut short/);
    await assert.rejects(open(key, Buffer.from('not a backup at all, longer than a header')), /no FCB1 header/);
  });

  it("seals small values (a service's secrets) the same way, and names keys by id only", () => {
    const key = newBackupKey();
    const s = sealBytes(key, Buffer.from('{"password":"p"}'));
    assert.equal(openBytes(key, s).toString(), '{"password":"p"}');
    assert.throws(() => openBytes(newBackupKey(), s));
    assert.match(keyId(key), /^[0-9a-f]{16}$/);
    assert.notEqual(keyId(key), keyId(newBackupKey()));
    assert.match(newBackupId('cache', new Date('2026-12-07T14:30:12.345Z')), /^cache-20261207t143012-[0-9a-f]{4}$/);
  });

  it('keeps objects in a directory whole or not at all, lists and deletes them by prefix', async () => {
    const root = tempDir();
    const t = openTarget(`dir:${root}`) as DirTarget;
    assert.equal(t.uri, `dir:${root}`);
    await t.put('b1/cache-0.rdb.fcb', Readable.from([data]));
    await t.put('b1/manifest.json', Readable.from([Buffer.from('{}')]));
    await t.put('b2/manifest.json', Readable.from([Buffer.from('{}')]));
    // A put that fails midway leaves nothing under the object's name.
    const failing = new Readable({
      read() {
        this.destroy(new Error('the dump ended badly'));
      },
    });
    await assert.rejects(t.put('b3/part.fcb', failing), /ended badly/);
    assert.deepEqual(await t.list(''), ['b1/cache-0.rdb.fcb', 'b1/manifest.json', 'b2/manifest.json']);
    assert.ok(!fs.existsSync(path.join(root, 'b3/part.fcb.partial')), 'nothing left of the failed put');
    const back: Buffer[] = [];
    for await (const c of t.get('b1/cache-0.rdb.fcb')) back.push(c as Buffer);
    assert.deepEqual(Buffer.concat(back), data);
    await t.deletePrefix('b1/');
    await t.deletePrefix('b1/');
    assert.deepEqual(await t.list(''), ['b2/manifest.json']);
    assert.ok(!fs.existsSync(path.join(root, 'b1')));
    assert.throws(() => t.get('../outside'), /outside/);
  });

  it('refuses a target that is not one, saying what one looks like', () => {
    assert.throws(() => openTarget('dir:relative/path'), /dir:\/absolute\/path/);
    assert.throws(() => openTarget('ftp://host/x'), /no target of scheme ftp:; give dir:\/path/);
    assert.throws(() => openTarget('s3://bucket/prefix'), /S3 buckets are not supported yet/);
    assert.throws(() => openTarget('/just/a/path'), /not a target URI; give dir:\/path/);
  });
});
