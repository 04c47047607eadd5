// Talking to test nodes over HTTPS: the cluster CA from a node's data dir,
// and the join token that the first node made.
import fs from 'node:fs';
import path from 'node:path';
import { ApiClient } from '../../src/client.ts';

export function readCa(dataDir: string): string {
  return fs.readFileSync(path.join(dataDir, 'tls', 'ca.crt'), 'utf8');
}

/** A long-lived client of one node; close it when done. */
export function nodeClient(addr: string, token: string, ca: string, timeoutMs = 20_000): ApiClient {
  return new ApiClient({ addr, token, ca, keepAlive: true, timeoutMs });
}

/** The standing join token, once the first leader has made it. */
export async function joinToken(client: ApiClient, ms = 20_000): Promise<string> {
  const deadline = Date.now() + ms;
  let last = '';
  while (Date.now() < deadline) {
    const r = await client.raw('GET', '/v1/tokens/join').catch((err: Error) => ({ status: 0, json: { error: { message: err.message } } }));
    if (r.status === 200) return (r.json as { token: string }).token;
    last = `${r.status} ${JSON.stringify(r.json)}`;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`no join token after ${ms} ms: ${last}`);
}
