// The cluster's event history: what the catalog and the agents decided and
// when (a member placed, moved, started, healthy, stopped; a node's lease
// lost; a service's status; a backup or a drill ended), each with its time,
// service, member, node and reason. Kept in the controldb under
// /events/<time>-<random>, so that the keys sort by time and every node
// reads the same history; bounded by count and age (retention.ts).
//
// Recording is best effort: an event that cannot be written (no quorum, a
// fenced node) is logged and dropped, and never holds up the decision it
// tells of.
import crypto from 'node:crypto';
import { z } from 'zod';
import type { ControlDb } from '../controldb/controldb.ts';
import { errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';

export const EVENTS_PREFIX = '/events/';

export const eventSchema = z
  .object({
    at: z.string(),
    /** What happened, one word: placed, moved, started, healthy, unhealthy, failed, stopped, lease-lost, status, backup, drill, … */
    kind: z.string(),
    service: z.string().optional(),
    member: z.string().optional(),
    /** The node it happened on (for a move, the node the member went to). */
    node: z.string().optional(),
    reason: z.string(),
  })
  .strict();
export type ClusterEvent = z.infer<typeof eventSchema>;
export type NewEvent = Omit<ClusterEvent, 'at'>;

/** The event's key: its time to the millisecond, then random bytes (two events of one millisecond keep both). */
export const eventKey = (at: Date) => `${EVENTS_PREFIX}${at.toISOString()}-${crypto.randomBytes(3).toString('hex')}`;

/** Record an event now; never throws. */
export async function recordEvent(db: ControlDb, log: Logger, e: NewEvent): Promise<void> {
  const at = new Date();
  const event: ClusterEvent = { at: at.toISOString(), ...e };
  try {
    await db.txn({ compare: [], success: [{ put: { key: eventKey(at), value: JSON.stringify(event) } }], failure: [] });
  } catch (err) {
    log.debug({ event, err: errorMessage(err) }, 'could not record an event');
  }
}

/** The events after key `after` (all, when undefined), oldest first, of `service` if given; at most `limit`; and the last key read. */
export function readEvents(db: ControlDb, o: { service?: string; after?: string; limit: number }): { events: ClusterEvent[]; last: string | undefined } {
  const kvs = db.store.range({ key: EVENTS_PREFIX, prefix: true, limit: 0 }).kvs;
  const newer = o.after === undefined ? kvs : kvs.filter((kv) => kv.key > o.after!);
  const events: ClusterEvent[] = [];
  for (const kv of newer) {
    const e = eventSchema.parse(JSON.parse(kv.value));
    if (o.service === undefined || e.service === o.service) events.push(e);
  }
  return { events: events.slice(-o.limit), last: kvs.at(-1)?.key ?? o.after };
}
