// What the benches on the test bed share: a node with its agent running,
// waiting for a condition the bench then measures from, and the median of
// its runs.
import { TestBed } from '../test/bed/bed.ts';

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Poll `read` until `ok` holds for what it returns (a read that throws counts as not yet); after `ms`, throw naming `what` and what was last seen. */
export async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read().catch(() => undefined);
    if (v !== undefined && ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** One node on the test bed with its agent running, and its API that throws on anything but 200. */
export async function oneNodeBed(o: {
  clientNamespace: boolean;
}): Promise<{ bed: TestBed; api: (method: string, p: string, body?: unknown) => Promise<Record<string, unknown>> }> {
  const bed = await TestBed.create({ nodes: 1, clientNamespace: o.clientNamespace, docker: true });
  const api = async (method: string, p: string, body?: unknown) => {
    const r = await bed.api(0, method, p, body);
    if (r.status !== 200) throw new Error(`${method} ${p}: ${r.status} ${JSON.stringify(r.json)}`);
    return r.json as Record<string, unknown>;
  };
  try {
    await bed.start(0, bed.serviceNodeArgs(8));
    await until(
      async () => (await api('POST', '/v1/kv/range', { key: '/_cluster/alive/', prefix: true })).kvs as unknown[],
      (k) => k.length === 1,
      60_000,
      'the agent',
    );
  } catch (err) {
    await bed.destroy();
    throw err;
  }
  return { bed, api };
}
