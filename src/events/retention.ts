// The event history's bounds, kept by the leader with the catalog's passes:
// at most a count of events, none older than an age; the oldest go first, a
// bounded batch a pass, so a long backlog never makes one huge write.
import type { ControlDb } from '../controldb/controldb.ts';
import type { Logger } from '../log.ts';
import { EVENTS_PREFIX } from './events.ts';

/** Events removed at most per pass. */
const batch = () => 500;
/** How often the leader looks: the bounds are loose, and reading every key each 500 ms pass would cost more than it keeps. */
const everyMs = () => 30_000;

export interface EventBounds {
  maxEvents: number;
  maxAgeMs: number;
}

export const DEFAULT_EVENT_BOUNDS: EventBounds = { maxEvents: 10_000, maxAgeMs: 7 * 86_400_000 };

/** The keys beyond the bounds: the oldest over the count, and those older than the age (keys sort by time). */
export function beyondBounds(keys: string[], bounds: EventBounds, now: Date): string[] {
  const cutoff = `${EVENTS_PREFIX}${new Date(now.getTime() - bounds.maxAgeMs).toISOString()}`;
  const over = Math.max(0, keys.length - bounds.maxEvents);
  return keys.filter((k, i) => i < over || k < cutoff);
}

export class EventRetention {
  private lastLook = 0;

  constructor(private readonly o: { db: ControlDb; log: Logger; bounds: EventBounds; now?: () => Date }) {}

  async reconcile(): Promise<void> {
    const now = this.o.now?.() ?? new Date();
    if (now.getTime() - this.lastLook < everyMs()) return;
    this.lastLook = now.getTime();
    const keys = this.o.db.store.range({ key: EVENTS_PREFIX, prefix: true, limit: 0 }).kvs.map((kv) => kv.key);
    const goes = beyondBounds(keys, this.o.bounds, now).slice(0, batch());
    if (goes.length === 0) return;
    await this.o.db.txn({ compare: [], success: goes.map((key) => ({ delete: { key, prefix: false } })), failure: [] });
    this.o.log.debug({ removed: goes.length }, 'events beyond their bounds removed');
  }
}
