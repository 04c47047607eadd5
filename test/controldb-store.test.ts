// The controldb state machine on a real SQLite file.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CompactedError, KvStore } from '../src/controldb/store.ts';
import type { Command, TxnResponse } from '../src/controldb/types.ts';
import type { Entry } from '../src/raft/types.ts';
import { tempDir } from './helpers/proc.ts';

function harness(file = path.join(tempDir(), 'state.db')) {
  const store = new KvStore(file, { eventRetention: 1000 });
  let index = store.appliedIndex();
  const apply = (cmd: Command) => {
    const e: Entry = { index: ++index, term: 1, type: 'normal', data: Buffer.from(JSON.stringify(cmd)) };
    return store.apply([e])[0];
  };
  const txn = (t: Partial<Extract<Command, { op: 'txn' }>['txn']>) => apply({ op: 'txn', txn: { compare: [], success: [], failure: [], ...t } }) as TxnResponse;
  const put = (key: string, value: string, lease?: number) => txn({ success: [{ put: { key, value, ...(lease ? { lease } : {}) } }] });
  return { store, apply, txn, put, file };
}

describe('controldb store', () => {
  it('keeps etcd revisions: one store revision, per-key create/mod revision and version', () => {
    const { store, put, txn } = harness();
    assert.equal(store.revision(), 1);
    assert.equal(put('a', '1').revision, 2);
    assert.equal(put('b', '1').revision, 3);
    const r = put('a', '2');
    assert.equal(r.revision, 4);
    assert.deepEqual(store.get('a'), { key: 'a', value: '2', create_revision: 2, mod_revision: 4, version: 2, lease: 0 });
    // A transaction's writes share one revision; a read-only one does not move it.
    const multi = txn({ success: [{ put: { key: 'c', value: 'x' } }, { put: { key: 'd', value: 'y' } }] });
    assert.equal(multi.revision, 5);
    assert.equal(store.get('d')!.mod_revision, 5);
    assert.equal(txn({ success: [{ range: { key: 'a', prefix: false, limit: 0 } }] }).revision, 5);
  });

  it('compare-and-set: create-if-absent and update-if-match are transactions', () => {
    const { store, txn } = harness();
    const create = (v: string) => txn({ compare: [{ key: 'k', target: 'exists', op: '=', value: false }], success: [{ put: { key: 'k', value: v } }] });
    assert.equal(create('first').succeeded, true);
    assert.equal(create('second').succeeded, false);
    assert.equal(store.get('k')!.value, 'first');
    const mod = store.get('k')!.mod_revision;
    const cas = (expectMod: number, v: string) =>
      txn({
        compare: [{ key: 'k', target: 'mod_revision', op: '=', value: expectMod }],
        success: [{ put: { key: 'k', value: v } }],
        failure: [{ range: { key: 'k', prefix: false, limit: 0 } }],
      });
    assert.equal(cas(mod, 'second').succeeded, true);
    const lost = cas(mod, 'third');
    assert.equal(lost.succeeded, false);
    assert.deepEqual((lost.responses[0] as { range: { kvs: { value: string }[] } }).range.kvs[0].value, 'second');
    for (const [target, op, value, want] of [
      ['value', '=', 'second', true],
      ['value', '!=', 'second', false],
      ['version', '>', 1, true],
      ['version', '<', 2, false],
      ['create_revision', '=', store.get('k')!.create_revision, true],
    ] as const) {
      assert.equal(txn({ compare: [{ key: 'k', target, op, value }] }).succeeded, want, `${target} ${op} ${value}`);
    }
  });

  it('ranges over a prefix with a limit and deletes a prefix', () => {
    const { store, put, txn } = harness();
    for (const k of ['svc/a', 'svc/b', 'svc/c', 'svd/x']) put(k, k);
    const r = store.range({ key: 'svc/', prefix: true, limit: 2 });
    assert.deepEqual(
      r.kvs.map((k) => k.key),
      ['svc/a', 'svc/b'],
    );
    assert.equal(r.count, 3);
    assert.equal(r.more, true);
    const d = txn({ success: [{ delete: { key: 'svc/', prefix: true } }] });
    assert.deepEqual(d.responses, [{ delete: { deleted: 3 } }]);
    assert.deepEqual(
      store.range({ key: 's', prefix: true, limit: 0 }).kvs.map((k) => k.key),
      ['svd/x'],
    );
  });

  it('applies a retried request once', () => {
    const { store, txn } = harness();
    const req = { request_id: 'r-1', success: [{ put: { key: 'n', value: 'x' } }] };
    const first = txn(req);
    const again = txn(req);
    assert.deepEqual(again, first);
    assert.equal(store.get('n')!.version, 1);
  });

  it('deletes the keys of a revoked lease, and ignores puts on a lease that is gone', () => {
    const { store, apply, put } = harness();
    apply({ op: 'lease_grant', id: 7, ttl: 5 });
    put('node/1', 'alive', 7);
    put('node/2', 'alive', 7);
    put('other', 'x');
    assert.deepEqual(store.leaseKeys(7), ['node/1', 'node/2']);
    apply({ op: 'lease_revoke', id: 7 });
    assert.equal(store.get('node/1'), undefined);
    assert.equal(store.get('other')!.value, 'x');
    assert.deepEqual(store.leases(), []);
    put('node/3', 'late', 7);
    assert.equal(store.get('node/3'), undefined);
  });

  it('keeps watch events from a revision, and refuses a compacted one clearly', () => {
    const { store, apply, put, txn } = harness();
    put('w/a', '1');
    const from = store.revision() + 1;
    put('w/a', '2');
    put('x', 'ignored');
    txn({ success: [{ delete: { key: 'w/a', prefix: false } }] });
    const ev = store.events(from, 'w/', true);
    assert.deepEqual(
      ev.map((e) => [e.revision, e.event.type, e.event.kv.value]),
      [
        [from, 'put', '2'],
        [from + 2, 'delete', ''],
      ],
    );
    const seen: number[] = [];
    store.onEvents((rev) => seen.push(rev));
    put('w/b', '1');
    assert.deepEqual(seen, [store.revision()]);
    apply({ op: 'compact', revision: from });
    assert.throws(() => store.events(from, 'w/', true), CompactedError);
    assert.equal(store.events(from + 1, 'w/', true).length, 2);
  });

  it('survives a reopen and round-trips through a snapshot image', () => {
    const h = harness();
    h.put('a', '1');
    h.put('b', '2');
    const applied = h.store.appliedIndex();
    const image = h.store.snapshot();
    h.store.close();
    const reopened = new KvStore(h.file);
    assert.equal(reopened.appliedIndex(), applied);
    assert.equal(reopened.get('b')!.value, '2');
    reopened.close();

    const other = harness();
    other.put('zzz', 'old');
    other.store.restore(image);
    assert.equal(other.store.get('zzz'), undefined);
    assert.equal(other.store.get('a')!.value, '1');
    assert.equal(other.store.appliedIndex(), applied);
    assert.equal(other.store.revision(), 3);
  });
});
