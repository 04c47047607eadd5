// Token checks against one replica's store: what a node decides for every API request, without a round trip. The
// records stay in memory once read, so each way a replica's store can change under them is tried here: a write
// applied from the log, and a whole snapshot installed in its place (how a lagging follower catches up).
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { ControlDb } from '../src/controldb/controldb.ts';
import { KvStore } from '../src/controldb/store.ts';
import type { TxnRequest } from '../src/controldb/types.ts';
import { Tokens } from '../src/security/tokens.ts';
import { tempDir } from './helpers/proc.ts';

const DIGEST = 'ab'.repeat(32);

/** A replica's real store with Tokens over it; its writes are applied as committed log entries would be. */
function replica() {
  const store = new KvStore(path.join(tempDir(), 'state.db'), { eventRetention: 1000 });
  let index = store.appliedIndex();
  const txn = (req: TxnRequest) =>
    Promise.resolve(store.apply([{ index: ++index, term: 1, type: 'normal', data: Buffer.from(JSON.stringify({ op: 'txn', txn: req })) }])[0]);
  const tokens = new Tokens({ store, txn } as unknown as ControlDb, DIGEST);
  return { store, tokens };
}

describe('token records', () => {
  it('checks the secret on every request, and a revoke applied from the log refuses the token at once', async () => {
    const { tokens, store } = replica();
    const { id, token } = await tokens.create('api');
    assert.deepEqual(tokens.validate(token, 'api'), { ok: true, id });
    assert.deepEqual(tokens.validate(token, 'api'), { ok: true, id }, 'again, from what the first check kept');
    const forged = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    assert.deepEqual(tokens.validate(forged, 'api'), { ok: false, reason: 'unknown or revoked token' }, 'the same id with another secret');
    assert.deepEqual(tokens.validate(token.slice(0, -1), 'api'), { ok: false, reason: 'unknown or revoked token' }, 'a prefix of the secret');
    await tokens.revoke(id);
    assert.deepEqual(tokens.validate(token, 'api'), { ok: false, reason: 'unknown or revoked token' });
    store.close();
  });

  it('a snapshot installed over the store replaces the records read before it', async () => {
    const leader = replica();
    const { id, token } = await leader.tokens.create('api');
    // A follower that has the token, and has read it: its record is held.
    const follower = replica();
    follower.store.restore(leader.store.snapshot());
    assert.deepEqual(follower.tokens.validate(token, 'api'), { ok: true, id });
    // The token is revoked while the follower is cut off; it catches up from a snapshot, hearing of no delete.
    await leader.tokens.revoke(id);
    const { id: laterId, token: later } = await leader.tokens.create('api');
    follower.store.restore(leader.store.snapshot());
    assert.deepEqual(follower.tokens.validate(token, 'api'), { ok: false, reason: 'unknown or revoked token' });
    assert.deepEqual(follower.tokens.validate(later, 'api'), { ok: true, id: laterId });
    leader.store.close();
    follower.store.close();
  });
});
