// The write loop the test clients share (pg-client, zk-client, …): ids
// start, start+1, … written one at a time, each acknowledged before the next,
// a failed write retried after 100 ms. It prints what the tests read (see
// startLoad in service-bed.ts): in load mode {"ready":true} after the first
// acknowledged write, {"resumedAt", "gapMs", "id"} after each outage of over
// a second and {"progress": id} every 20 acknowledged writes; always, at the
// end, {"acked": [first, last], "errors", "longestGapMs", "messages"} (and,
// asked for, each write's send and acknowledgement times), where
// an outage still under way at the end counts as a gap too, and messages
// are the first errors of each kind with the ms since the start they came.
export interface WriteLoop {
  start: number;
  /** The last id to write (insert/create mode); load mode writes until stdin closes. */
  end?: number;
  write: (id: number) => Promise<void>;
  /** After a failed write, before the next try: start a new session, say. */
  afterError?: () => Promise<void>;
  /** A pause after each acknowledged write, so that a fast service is not driven flat out. */
  paceMs?: number;
  /**
   * Also print, at the end, {"stamps": [[id, sentMs, ackedMs], …]}: when each write was first sent and when it was
   * acknowledged, by this machine's clock. Its commit lies between the two (a point-in-time restore is checked by them).
   */
  stamps?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function writeLoop(o: WriteLoop): Promise<void> {
  const load = o.end === undefined;
  const end = o.end ?? Number.MAX_SAFE_INTEGER;
  let stop = false;
  if (load) process.stdin.on('end', () => (stop = true)).resume();
  let id = o.start;
  let errors = 0;
  let lastOk = Date.now();
  let longestGapMs = 0;
  const started = Date.now();
  const messages = new Map<string, number>();
  // Bounded: a count stops at its end; load mode when stdin closes, and never runs past 15 minutes.
  const deadline = Date.now() + 15 * 60_000;
  const stamps: [number, number, number][] = [];
  let sent: number | undefined;
  while (id <= end && !stop && Date.now() < deadline) {
    try {
      sent ??= Date.now(); // a retried write may have committed on its first try
      await o.write(id);
      const now = Date.now();
      if (o.stamps) stamps.push([id, sent, now]);
      sent = undefined;
      // A write that follows an outage says when the service answered again, for the test to time a failover.
      if (load && now - lastOk > 1000) process.stdout.write(JSON.stringify({ resumedAt: now, gapMs: now - lastOk, id }) + '\n');
      longestGapMs = Math.max(longestGapMs, now - lastOk);
      lastOk = now;
      if (id === o.start && load) process.stdout.write('{"ready":true}\n');
      if (load && (id - o.start) % 20 === 19) process.stdout.write(JSON.stringify({ progress: id }) + '\n');
      id++;
      if (o.paceMs) await sleep(o.paceMs);
    } catch (err) {
      errors++;
      const message = err instanceof Error ? err.message : String(err);
      if (messages.size < 10 && !messages.has(message)) messages.set(message, Date.now() - started);
      await o.afterError?.();
      await sleep(100);
    }
  }
  longestGapMs = Math.max(longestGapMs, Date.now() - lastOk);
  const firstSeen = [...messages].map(([m, ms]) => `+${ms} ms: ${m}`);
  if (o.stamps) process.stdout.write(JSON.stringify({ stamps }) + '\n');
  process.stdout.write(JSON.stringify({ acked: [o.start, id - 1], errors, longestGapMs, messages: firstSeen }) + '\n');
}
