// The backup kit's parts that need no cluster: a part sealed (Brotli, then
// AES-256-GCM with the cluster key) opens only with that key and only whole;
// a target (a directory, and a bucket of a real S3-compatible server:
// S3Proxy) writes each object whole or not at all, lists and deletes by
// prefix; a target URI that is not one, and a bucket that refuses the
// credentials, are refused with what to change; PostgreSQL's archived WAL is
// replayed from a backup's first segment up to the first gap; retention and
// schedules keep their rules; a restored Redis cluster master is given only the
// slots of its shard it did not claim.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { keyId, newBackupId, type BackupRecord } from '../src/backup/records.ts';
import { beyondRetention, checkSchedule, nextRun, parseRetention } from '../src/backup/schedule.ts';
import { newBackupKey, openBytes, opening, sealBytes, sealing, Tally } from '../src/backup/seal.ts';
import { openTarget, S3Target, s3AccessKey, type BackupTarget } from '../src/backup/target.ts';
import type { RecordStore } from '../src/catalog/records.ts';
import { walReplay } from '../src/catalog/services/postgres/postgres.ts';
import { missingRanges } from '../src/catalog/services/redis/redis.ts';
import { tempDir } from './helpers/proc.ts';
import { startS3Server, type S3Server } from './helpers/s3-server.ts';

/** A replica's store holding only these records. */
const storeOf = (records: Record<string, unknown> = {}): RecordStore => ({
  get: (key) => (key in records ? { key, value: JSON.stringify(records[key]), create_revision: 1, mod_revision: 1, version: 1, lease: 0 } : undefined),
  range: () => ({ kvs: [] }),
});

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
    assert.equal(sealed.subarray(0, 4).toString(), 'FCB2');
    assert.ok(sealed.length < data.length, `sealed ${sealed.length} < dump ${data.length}`);
    assert.ok(!sealed.includes(Buffer.from('redisredisredis')), 'nothing of the dump shows through');
    assert.equal(sha256, crypto.createHash('sha256').update(sealed).digest('hex'));
    assert.deepEqual(await open(key, sealed), data);
  });

  it('seals a dump of many blocks (compressed several at once) and an empty one, and opens each whole and in order', async () => {
    const key = newBackupKey();
    const big = Buffer.concat([crypto.randomBytes(3 << 20), Buffer.alloc(6 << 20, 'table rows '), crypto.randomBytes(12345)]);
    assert.deepEqual(await open(key, (await seal(key, big)).sealed), big);
    assert.deepEqual(await open(key, (await seal(key, Buffer.alloc(0))).sealed), Buffer.alloc(0));
  });

  it('refuses another key, a changed byte and a part cut short', async () => {
    const key = newBackupKey();
    const { sealed } = await seal(key, data);
    await assert.rejects(open(newBackupKey(), sealed), /does not open with this cluster's backup key, or it was changed/);
    const changed = Buffer.from(sealed);
    changed[Math.floor(changed.length / 2)] ^= 1;
    await assert.rejects(open(key, changed), /does not open|changed|Decompression failed/);
    await assert.rejects(open(key, sealed.subarray(0, 10)), /cut short/);
    await assert.rejects(open(key, Buffer.from('not a backup at all, longer than a header')), /no FCB2 header/);
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

  /** What every target does: objects whole or not at all, listed and deleted by prefix. */
  async function targetContract(t: BackupTarget): Promise<void> {
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
    const listed = await t.list('');
    assert.deepEqual(
      listed.map((o) => o.key),
      ['b1/cache-0.rdb.fcb', 'b1/manifest.json', 'b2/manifest.json'],
    );
    assert.equal(listed[0].bytes, data.length);
    assert.ok(
      Math.abs(listed[0].modified.getTime() - Date.now()) < 60_000,
      `a listed object's time is when it was written: ${listed[0].modified.toISOString()}`,
    );
    assert.deepEqual(
      (await t.list('b1/cache')).map((o) => o.key),
      ['b1/cache-0.rdb.fcb'],
    );
    const back: Buffer[] = [];
    for await (const c of t.get('b1/cache-0.rdb.fcb')) back.push(c as Buffer);
    assert.deepEqual(Buffer.concat(back), data);
    await t.deletePrefix('b1/');
    await t.deletePrefix('b1/');
    assert.deepEqual(
      (await t.list('')).map((o) => o.key),
      ['b2/manifest.json'],
    );
    await assert.rejects(async () => {
      for await (const _ of t.get('b1/cache-0.rdb.fcb'));
    });
  }

  it('keeps objects in a directory whole or not at all, lists and deletes them by prefix', async () => {
    const root = tempDir();
    const t = openTarget(`dir:${root}`, storeOf());
    assert.equal(t.uri, `dir:${root}`);
    assert.equal(t.local, true);
    await targetContract(t);
    assert.ok(!fs.existsSync(path.join(root, 'b3/part.fcb.partial')), 'nothing left of the failed put');
    assert.ok(!fs.existsSync(path.join(root, 'b1')));
    assert.throws(() => t.get('../outside'), /outside/);
  });

  describe('an S3 bucket (S3Proxy)', () => {
    let s3: S3Server;
    before(async () => {
      s3 = await startS3Server();
    });
    after(() => s3?.stop());
    const access = () => ({ endpoint: s3.endpoint, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey });

    it('keeps objects whole or not at all under the prefix, lists and deletes them, with the credentials the cluster keeps for the bucket', async () => {
      const t = openTarget(`s3://${s3.bucket}/cluster-a`, storeOf({ [s3AccessKey(s3.bucket)]: access() }));
      assert.ok(t instanceof S3Target);
      assert.equal(t.local, false);
      await t.probe();
      await targetContract(t);
      // Nothing outside the prefix is seen or touched.
      const other = openTarget(`s3://${s3.bucket}/cluster-b`, storeOf({ [s3AccessKey(s3.bucket)]: access() }));
      assert.deepEqual(await other.list(''), []);
    });

    it('names the bucket and what to check when it refuses the credentials, and says how to give them when the cluster has none', async () => {
      const wrong = openTarget(`s3://${s3.bucket}/x`, storeOf(), { ...access(), secretAccessKey: 'wrong-secret' }) as S3Target;
      await assert.rejects(
        wrong.probe(),
        /backup target s3:\/\/backups\/x: bucket backups at http:\/\/127\.0\.0\.1:\d+ refused a test object \(.*403.*\): check/,
      );
      const missing = openTarget(`s3://nosuchbucket/x`, storeOf(), access()) as S3Target;
      await assert.rejects(missing.probe(), /bucket nosuchbucket .* refused a test object \(NoSuchBucket/);
      assert.throws(
        () => openTarget(`s3://${s3.bucket}/x`, storeOf()),
        /no credentials for bucket backups: give them once with "firecampd backup target set s3:\/\/backups\/x --endpoint/,
      );
    });
  });

  it('refuses a target that is not one, saying what one looks like', () => {
    assert.throws(() => openTarget('dir:relative/path', storeOf()), /dir:\/absolute\/path/);
    assert.throws(() => openTarget('ftp://host/x', storeOf()), /no target of scheme ftp:; give dir:\/path .* or s3:\/\/bucket\/prefix/);
    assert.throws(() => openTarget('s3://B_ad/prefix', storeOf()), /an S3 target is s3:\/\/bucket\/prefix/);
    assert.throws(() => openTarget('/just/a/path', storeOf()), /not a target URI; give dir:\/path/);
  });

  it("replays PostgreSQL's archived WAL from the backup's first segment to the first gap, across timelines", () => {
    const names = [
      '000000010000000000000001', // before the backup: not needed
      '000000010000000000000002',
      '000000010000000000000003',
      '00000002.history',
      '000000020000000000000003', // the new timeline forks in segment 3
      '000000020000000000000004',
      '000000010000000000000002.00000028.backup',
      '0000000200000000000000FF',
      '000000020000000100000000', // a log id further: segment 256 follows 255
    ];
    assert.deepEqual(walReplay('000000010000000000000002', names.slice(0, 6)), {
      files: ['00000002.history', '000000010000000000000002', '000000010000000000000003', '000000020000000000000003', '000000020000000000000004'],
    });
    // Segments 5 to 254 are missing: replay stops before the gap, and says where.
    assert.deepEqual(walReplay('000000010000000000000002', names).gapAfter, '000000020000000000000004');
    assert.deepEqual(walReplay('0000000200000000000000FF', names).files, ['00000002.history', '0000000200000000000000FF', '000000020000000100000000']);
  });

  it('keeps backups by count or by age, never the newest complete one, and drops failed ones a newer complete backup supersedes', () => {
    const rec = (id: string, hoursAgo: number, status: BackupRecord['status'] = 'complete'): BackupRecord => ({
      id,
      service: 's',
      type: 'redis',
      target: 'dir:/b',
      status,
      message: '',
      parts: [],
      bytes: 0,
      created_at: new Date(Date.UTC(2026, 11, 7, 12) - hoursAgo * 3_600_000).toISOString(),
    });
    const now = new Date(Date.UTC(2026, 11, 7, 12));
    const all = [rec('a', 50), rec('b', 40), rec('f1', 35, 'failed'), rec('c', 30), rec('d', 1), rec('f2', 0.5, 'failed'), rec('r', 0.1, 'running')];
    const ids = (rs: BackupRecord[]) => rs.map((r) => r.id).sort();
    assert.deepEqual(ids(beyondRetention(all, parseRetention('2'), now)), ['a', 'b', 'f1']);
    assert.deepEqual(ids(beyondRetention(all, parseRetention('36h'), now)), ['a', 'b']);
    assert.deepEqual(ids(beyondRetention(all, parseRetention('45h'), now)), ['a']);
    // Every complete backup is older than the age: the newest stays, a restore point.
    assert.deepEqual(ids(beyondRetention([rec('a', 50), rec('b', 40)], parseRetention('1h'), now)), ['a']);
    assert.deepEqual(parseRetention('2w'), { ageMs: 14 * 86_400_000 });
    assert.throws(() => parseRetention('0'), /give a count of backups to keep/);
  });

  it('runs a schedule at its moments, in UTC, with seconds when given six fields', () => {
    assert.equal(nextRun('0 3 * * *', new Date('2026-12-07T03:00:00Z')).toISOString(), '2026-12-08T03:00:00.000Z');
    assert.equal(nextRun('*/15 * * * * *', new Date('2026-12-07T10:00:07Z')).toISOString(), '2026-12-07T10:00:15.000Z');
    assert.throws(() => checkSchedule('0 3 * *'), /a cron expression has 5 fields/);
    assert.throws(() => checkSchedule('0 25 * * *'), /does not parse as a cron expression/);
  });

  it('gives a restored Redis cluster master only the slots of its shard it did not claim from its keys', () => {
    assert.deepEqual(missingRanges(0, 5460, []), [[0, 5460]]);
    assert.deepEqual(missingRanges(0, 5460, ['0-99', '102', '200-5460', '[77->-abc]']), [
      [100, 101],
      [103, 199],
    ]);
    assert.deepEqual(missingRanges(5461, 10922, ['5461-10922']), []);
  });
});
