// A member's kept log on its volume (src/agent/logs/): real files in a
// temporary directory standing for the volume. What `service logs` reads:
// lines in order across rotations, bounded in size, only the previous run,
// from a time, the last N, and new lines as they come. The keeper's side
// (Docker's output, marks at each move) runs on the test beds.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { LOG_DIR, MemberLogFiles } from '../src/agent/logs/files.ts';
import { followKept, parseSince, readKept } from '../src/agent/logs/read.ts';
import { boundsFor } from '../src/agent/logs/keeper.ts';
import { checkLogDriver } from '../src/catalog/log-drivers.ts';
import type { MemberSpec } from '../src/agent/members.ts';
import { pollUntil } from './helpers/wait.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fc-member-logs-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

let n = 0;
const volume = () => {
  const dir = path.join(root, `v${++n}`);
  fs.mkdirSync(dir);
  return dir;
};
/** A line as the keeper writes it: Docker's time with nanoseconds, then the text. */
const at = (ms: number, text: string) => `${new Date(ms).toISOString().replace('Z', '123456Z')} ${text}\n`;
const T0 = Date.parse('2026-12-08T03:00:00Z');

describe('member logs kept on the volume', () => {
  it('keeps lines in order across rotations, within its size bound, in a directory only root reads', () => {
    const files = new MemberLogFiles(volume(), { maxBytes: 4096, files: 3, maxAgeMs: 3600_000 });
    for (let i = 0; i < 400; i++) files.append(at(T0 + i * 1000, `line ${i}`));
    const lines = readKept(files, {});
    const numbers = lines.map((l) => Number(/line (\d+)/.exec(l)![1]));
    assert.ok(numbers.length > 0 && numbers.length < 400, 'the oldest lines went');
    assert.equal(numbers.at(-1), 399, 'the newest line is there');
    assert.deepEqual(
      numbers,
      [...numbers].sort((a, b) => a - b),
      'in order across the rotated files',
    );
    assert.deepEqual(
      numbers,
      Array.from({ length: numbers.length }, (_, i) => numbers[0] + i),
      'no line lost between the files kept',
    );
    const total = files.files().reduce((sum, f) => sum + fs.statSync(f).size, 0);
    assert.ok(total <= 4096, `${total} bytes kept, bound 4096`);
    assert.equal(files.files().length, 4, 'the current file and 3 rotated ones');
    assert.equal(fs.statSync(files.dir).mode & 0o777, 0o700);
  });

  it('shows only the previous run, from a time, the last N, with or without times', () => {
    const files = new MemberLogFiles(volume());
    files.append(at(T0, '--- firecampd: m-0 started on node a at epoch 1 (redis:7.0) ---'));
    files.append(at(T0 + 1000, 'first run'));
    files.append(at(T0 + 2000, '--- firecampd: m-0 stopped on node a: assigned elsewhere ---'));
    files.append(at(T0 + 3000, '--- firecampd: m-0 started on node b at epoch 2 (redis:7.0), moved here from node a ---'));
    files.append(at(T0 + 4000, 'second run'));
    assert.deepEqual(readKept(files, { previous: true }), [
      '--- firecampd: m-0 started on node a at epoch 1 (redis:7.0) ---',
      'first run',
      '--- firecampd: m-0 stopped on node a: assigned elsewhere ---',
    ]);
    assert.deepEqual(readKept(files, { since: new Date(T0 + 3000).toISOString() }), [
      '--- firecampd: m-0 started on node b at epoch 2 (redis:7.0), moved here from node a ---',
      'second run',
    ]);
    assert.deepEqual(readKept(files, { tail: 1, timestamps: true }), [at(T0 + 4000, 'second run').trimEnd()]);
    assert.deepEqual(readKept(files, { tail: 0 }), []);
  });

  it('follows new lines as they come, also into a new file after a rotation', async () => {
    const files = new MemberLogFiles(volume(), { maxBytes: 2048, files: 1, maxAgeMs: 3600_000 });
    files.append(at(T0, 'before'));
    const seen: string[] = [];
    let gone = false;
    let ended = false;
    const stop = followKept(
      files,
      (lines) => seen.push(...lines),
      () => gone,
      () => (ended = true),
    );
    try {
      files.append(at(T0 + 1, 'after 0'));
      await pollUntil(() => seen.some((l) => l.endsWith(' after 0')), Boolean, { ms: 5000, what: 'the first new line' });
      // Past the current file's share (1 KiB): a rotation between two looks.
      for (let i = 1; i < 20; i++) files.append(at(T0 + 1 + i, `after ${i} ${'x'.repeat(40)}`));
      files.append(at(T0 + 100, 'last'));
      await pollUntil(() => seen.some((l) => l.endsWith(' last')), Boolean, { ms: 5000, what: 'the line written after a rotation' });
      assert.ok(!seen.some((l) => l.endsWith(' before')), 'only what came after the start');
      const numbers = seen.flatMap((l) => (/after (\d+)/.exec(l) ? [Number(/after (\d+)/.exec(l)![1])] : []));
      assert.deepEqual(
        numbers,
        Array.from({ length: 20 }, (_, i) => i),
        'every line, once, in order, across the rotation',
      );
      gone = true;
      await pollUntil(() => ended, Boolean, { ms: 5000, what: 'the end once the log is no longer kept here' });
    } finally {
      stop();
    }
  });

  it('takes --since as a duration or a time, and names what it cannot read', () => {
    assert.equal(parseSince('1h30m', T0), new Date(T0 - 90 * 60_000).toISOString());
    assert.equal(parseSince('2026-12-08T02:00:00Z'), '2026-12-08T02:00:00.000Z');
    assert.throws(() => parseSince('yesterday'), /--since "yesterday" is neither a duration \(90s, 10m, 1h30m, 2d\) nor a time/);
  });

  it("takes at most a sixteenth of the member's volume, whatever the node's bound", () => {
    const spec = { volume: { id: 'v', sizeMiB: 64, mountPath: '/data' } } as MemberSpec;
    assert.equal(boundsFor(spec, { maxBytes: 16 << 20, files: 3, maxAgeMs: 1 }).maxBytes, 4 << 20);
    assert.equal(boundsFor(spec, { maxBytes: 1 << 20, files: 3, maxAgeMs: 1 }).maxBytes, 1 << 20);
  });

  it('drops lines rather than fail when the volume cannot take them', () => {
    const dir = volume();
    const warnings: string[] = [];
    const files = new MemberLogFiles(dir, undefined, (m) => warnings.push(m));
    // A file where the log directory should be: every write fails, as on a full or broken volume.
    fs.writeFileSync(path.join(dir, LOG_DIR), 'not a directory');
    assert.doesNotThrow(() => {
      files.append(at(T0, 'one'));
      files.append(at(T0 + 1, 'two'));
    });
    assert.equal(warnings.length, 1, 'said once, not at every line');
  });

  it("takes Docker's own log drivers and plugins', and names one Docker lacks", () => {
    for (const ok of ['json-file', 'syslog', 'gelf', 'fluentd', 'grafana/loki-docker-driver:2.9.2']) assert.doesNotThrow(() => checkLogDriver(ok), ok);
    assert.throws(() => checkLogDriver('sysl0g'), /--log-driver "sysl0g" is not a logging driver Docker has: use one of json-file, local, .*syslog/);
  });
});
