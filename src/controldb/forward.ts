// Forwarding a request to another node's API, the leader's as a rule.
import { UserError, errorMessage } from '../errors.ts';
import type { NodeId } from '../raft/types.ts';
import type { Forwarder } from './controldb.ts';
import { FORWARDED_HEADER } from './routes.ts';

export function httpForwarder(token: string, address: (id: NodeId) => string | undefined, timeoutMs = 15_000): Forwarder {
  return async (node, method, path, body) => {
    const addr = address(node);
    if (!addr) throw new UserError(`the leader ${node} has no known address yet; retry shortly`, 503, 'unavailable');
    let res: Response;
    try {
      res = await fetch(`http://${addr}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', [FORWARDED_HEADER]: '1' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'ECONNREFUSED') {
        throw new UserError(`the leader ${node} at ${addr} refused the connection; retry shortly`, 503, 'unavailable');
      }
      // The request may have reached the leader before the connection failed.
      throw new UserError(
        `lost the connection to the leader ${node} at ${addr} (${errorMessage((err as { cause?: unknown }).cause ?? err)}); the request may or may not have been applied`,
        504,
        'unknown_outcome',
      );
    }
    const json = (await res.json().catch(() => ({}))) as { error?: { message: string; code: string } };
    if (!res.ok) throw new UserError(json.error?.message ?? `leader answered HTTP ${res.status}`, res.status, json.error?.code ?? 'error');
    return json;
  };
}
