// One replica's real store (SQLite on disk), for tests of what a node works
// out from its replica alone: writes go in as committed log entries would,
// and watches fire from the store's own events.
import path from 'node:path';
import type { ControlDb } from '../../src/controldb/controldb.ts';
import { KvStore } from '../../src/controldb/store.ts';
import type { TxnRequest } from '../../src/controldb/types.ts';
import { tempDir } from './proc.ts';

export function replica() {
  const store = new KvStore(path.join(tempDir(), 'state.db'), { eventRetention: 1000 });
  let index = store.appliedIndex();
  const txn = (req: TxnRequest) =>
    Promise.resolve(store.apply([{ index: ++index, term: 1, type: 'normal', data: Buffer.from(JSON.stringify({ op: 'txn', txn: req })) }])[0]);
  const put = (key: string, value: unknown) => txn({ compare: [], success: [{ put: { key, value: JSON.stringify(value) } }], failure: [] });
  const watch = (key: string, prefix: boolean, _from: number, cb: () => void) =>
    store.onEvents((_rev, events) => {
      if (events.some((e) => (prefix ? e.kv.key.startsWith(key) : e.kv.key === key))) cb();
    });
  return { store, put, db: { store, txn, watch } as unknown as ControlDb };
}
