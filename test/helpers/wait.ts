// Waiting in tests for what is asserted, not for something else and then
// reading once: poll until the condition holds, with a deadline, and on
// timeout say what was awaited and what was last seen.

export interface PollOptions {
  /** The deadline, in ms from the call. */
  ms: number;
  /** What is awaited, for the message: "timed out after … waiting for <what>". */
  what: string;
  /** Between polls; 100 ms unless given. */
  every?: number;
  /** More for the failure message: the nodes' last log lines, say. */
  context?: () => string;
}

/**
 * Poll `read` until `ok` holds for what it returns, and return that value
 * (assert on it: it is what the condition held for). A read that throws
 * counts as not yet; its error is then what was last seen.
 */
export async function pollUntil<T>(read: () => T | Promise<T>, ok: (value: T) => boolean, o: PollOptions): Promise<T> {
  const deadline = Date.now() + o.ms;
  let last: string;
  for (;;) {
    try {
      const value = await read();
      if (ok(value)) return value;
      last = show(value);
    } catch (err) {
      last = `an error: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${o.ms} ms waiting for ${o.what}; last seen: ${last}${o.context ? `\n${o.context()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, o.every ?? 100));
  }
}

function show(value: unknown): string {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  if (s === undefined) return String(value);
  if (s === '') return '(empty)';
  return s.length > 2000 ? `${s.slice(0, 2000)}…` : s;
}
