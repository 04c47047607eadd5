// The one HTTP port of a node: JSON API for the CLI, Prometheus metrics, and
// WebSocket upgrades for peers. Every request must carry the cluster token.
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { UserError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';

export const MAX_BODY_BYTES = 1 << 20;

export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  raw: http.IncomingMessage;
}

/** A response that is not JSON (metrics text, for one). */
export class RawResponse {
  constructor(readonly contentType: string, readonly body: string | Buffer, readonly status = 200) {}
}

/**
 * A long-lived response (watch): `start` writes to the response as it likes
 * and returns a function that releases what it holds when the client goes.
 */
export class StreamResponse {
  constructor(readonly contentType: string, readonly start: (res: http.ServerResponse) => () => void) {}
}

export type Handler = (req: ApiRequest) => unknown | Promise<unknown>;
export type UpgradeHandler = (ws: WebSocket, req: http.IncomingMessage) => void;

export interface ApiServerOptions {
  token: string;
  log: Logger;
}

export class ApiServer {
  private readonly routes = new Map<string, Handler>();
  private readonly upgrades = new Map<string, UpgradeHandler>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 20 });
  private readonly server: http.Server;
  private readonly tokenDigest: Buffer;

  constructor(private readonly opts: ApiServerOptions) {
    this.tokenDigest = digest(opts.token);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket, head));
    // A client that opens a socket and says nothing must not hold it for ever.
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 60_000;
    // Longer than clients keep idle pooled connections, so they never reuse one we are closing.
    this.server.keepAliveTimeout = 65_000;
  }

  route(method: string, path: string, handler: Handler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  upgrade(path: string, handler: UpgradeHandler): void {
    this.upgrades.set(path, handler);
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(header);
    return m !== null && timingSafeEqual(digest(m[1]!), this.tokenDigest);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://firecampd');
    const method = req.method ?? 'GET';
    try {
      if (!this.authorized(req)) {
        this.opts.log.warn({ remote: req.socket.remoteAddress, path: url.pathname }, 'refused request without a valid token');
        throw new UserError('missing or wrong token: pass --token or set FIRECAMPD_TOKEN', 401, 'unauthorized');
      }
      const handler = this.routes.get(`${method} ${url.pathname}`);
      if (!handler) {
        const known = [...this.routes.keys()].some((k) => k.endsWith(` ${url.pathname}`));
        throw known
          ? new UserError(`${method} is not allowed on ${url.pathname}`, 405, 'method_not_allowed')
          : new UserError(`no such endpoint: ${url.pathname}`, 404, 'not_found');
      }
      const body = method === 'GET' || method === 'HEAD' ? undefined : await readJsonBody(req);
      const result = await handler({ method, path: url.pathname, query: url.searchParams, body, raw: req });
      if (result instanceof StreamResponse) {
        res.writeHead(200, { 'content-type': result.contentType, 'cache-control': 'no-store' });
        res.flushHeaders();
        const stop = result.start(res);
        res.on('close', stop);
      } else if (result instanceof RawResponse) {
        res.writeHead(result.status, { 'content-type': result.contentType });
        res.end(result.body);
      } else {
        sendJson(res, 200, result ?? {});
      }
    } catch (err) {
      if (err instanceof UserError) {
        sendJson(res, err.status, { error: { code: err.code, message: err.message } });
      } else {
        this.opts.log.error({ err, path: url.pathname }, 'request failed');
        sendJson(res, 500, { error: { code: 'internal', message: errorMessage(err) } });
      }
    }
  }

  private handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://firecampd').pathname;
    const handler = this.upgrades.get(path);
    if (!handler || !this.authorized(req)) {
      // A peer dialing a node that is still starting finds no handler yet: not worth a warning.
      this.opts.log[handler ? 'warn' : 'debug']({ remote: req.socket.remoteAddress, path }, 'refused websocket upgrade');
      socket.end(`HTTP/1.1 ${handler ? '401 Unauthorized' : '404 Not Found'}\r\nconnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => handler(ws, req));
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Past the limit keep reading but drop the bytes, so the client gets our 413 rather than a reset.
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_BODY_BYTES) throw new UserError(`request body is larger than ${MAX_BODY_BYTES} bytes`, 413, 'too_large');
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new UserError(`request body is not valid JSON: ${errorMessage(err)}`, 400, 'bad_json');
  }
}
