// The event history's bounds (src/events/retention.ts): the oldest beyond
// the count go, and any older than the age, whatever the count.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EVENTS_PREFIX, eventKey } from '../src/events/events.ts';
import { beyondBounds } from '../src/events/retention.ts';

const at = (iso: string) => eventKey(new Date(iso));

describe('event history bounds', () => {
  const now = new Date('2026-12-07T12:00:00Z');
  const keys = [at('2026-11-20T00:00:00Z'), at('2026-12-06T00:00:00Z'), at('2026-12-07T10:00:00Z'), at('2026-12-07T11:00:00Z')];

  it('keys sort by time: the key is the time, then random bytes', () => {
    assert.ok(keys.every((k) => k.startsWith(EVENTS_PREFIX)));
    assert.deepEqual([...keys].sort(), keys);
    assert.notEqual(at('2026-12-07T11:00:00Z'), at('2026-12-07T11:00:00Z'), 'two events of one millisecond keep both');
  });

  it('removes those older than the age', () => {
    assert.deepEqual(beyondBounds(keys, { maxEvents: 100, maxAgeMs: 7 * 86_400_000 }, now), [keys[0]]);
  });

  it('removes the oldest beyond the count', () => {
    assert.deepEqual(beyondBounds(keys, { maxEvents: 2, maxAgeMs: 365 * 86_400_000 }, now), [keys[0], keys[1]]);
  });

  it('keeps everything within both', () => {
    assert.deepEqual(beyondBounds(keys, { maxEvents: 4, maxAgeMs: 30 * 86_400_000 }, now), []);
  });
});
