// The one port of a node: HTTPS with the cluster CA for the JSON API, the
// Prometheus metrics and the WebSocket upgrades of peers, plus a unix socket
// in the data dir for the CLI on the same machine. Who is calling is settled
// here, once, for every request: a member node by its client certificate, a
// user by a token, or the local root user by the socket's file mode.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import fs from 'node:fs';
import { WebSocketServer, type WebSocket } from 'ws';
import { UserError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { NodeTls } from '../security/pki.ts';
import type { TokenKind, Validation } from '../security/tokens.ts';

export const MAX_BODY_BYTES = 1 << 20;

/** Who made a request. */
export type Caller = { kind: 'node'; id: string } | { kind: 'token'; id: string } | { kind: 'join'; id: string } | { kind: 'local' } | { kind: 'anonymous' };

/**
 * What a route lets in: `api` a user's API token, a member node or the local
 * socket; `peer` member nodes only; `join` a join token; `public` anyone.
 */
export type Access = 'api' | 'peer' | 'join' | 'public';

export interface Authenticator {
  /** Whether a node with a certificate from the cluster CA may still speak for the cluster (it was not removed). */
  isMember(nodeId: string): boolean;
  checkToken(token: string, kind: TokenKind): Validation | Promise<Validation>;
}

export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
  raw: http.IncomingMessage;
  caller: Caller;
}

/** A response that is not JSON (metrics text, for one). */
export class RawResponse {
  constructor(
    readonly contentType: string,
    readonly body: string | Buffer,
    readonly status = 200,
  ) {}
}

/**
 * A long-lived response (watch): `start` writes to the response as it likes
 * and returns a function that releases what it holds when the client goes.
 */
export class StreamResponse {
  constructor(
    readonly contentType: string,
    readonly start: (res: http.ServerResponse) => () => void,
  ) {}
}

/** Returns the answer, or a promise of it (`unknown` covers both). */
export type Handler = (req: ApiRequest) => unknown;
export type UpgradeHandler = (ws: WebSocket, req: http.IncomingMessage, caller: Caller) => void;

export interface ApiServerOptions {
  log: Logger;
  auth: Authenticator;
}

interface Route {
  handler: Handler;
  access: Access;
}

/** Failed authentications a remote address may make per minute before it is refused outright. */
const MAX_FAILURES_PER_MINUTE = 20;

export class ApiServer {
  private readonly routes = new Map<string, Route>();
  private readonly upgrades = new Map<string, UpgradeHandler>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 << 20 });
  private readonly tcp: net.Server;
  /** Open TCP connections: the HTTPS server never listens itself, so Node does not track them for it. */
  private readonly sockets = new Set<net.Socket>();
  private https?: https.Server;
  private local?: http.Server;
  private localPath?: string;
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(private readonly opts: ApiServerOptions) {
    // The TCP port is bound before the node has its certificate (a joining
    // node learns its port first and gets its certificate after); until then
    // connections are turned away.
    this.tcp = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      if (this.https) this.https.emit('connection', socket);
      else socket.destroy();
    });
  }

  route(method: string, path: string, handler: Handler, access: Access = 'api'): void {
    this.routes.set(`${method} ${path}`, { handler, access });
  }

  /** WebSocket endpoints are for member nodes only. */
  upgrade(path: string, handler: UpgradeHandler): void {
    this.upgrades.set(path, handler);
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    await listenOn(this.tcp, (cb) => this.tcp.listen(port, host, cb));
    return this.tcp.address() as AddressInfo;
  }

  /** Start serving HTTPS with this node's certificate. */
  enableTls(tls: NodeTls): void {
    const server = https.createServer(
      {
        key: tls.keyPem,
        cert: tls.certPem + tls.caPem,
        ca: tls.caPem,
        // Ask every client for a certificate but let those without one in: users come with tokens.
        requestCert: true,
        rejectUnauthorized: false,
        handshakeTimeout: 10_000,
        minVersion: 'TLSv1.2',
      },
      (req, res) => void this.handle(req, res),
    );
    server.on('upgrade', (req, socket, head) => void this.handleUpgrade(req, socket, head));
    // Garbage and half-made handshakes end here; the socket is already destroyed.
    server.on('tlsClientError', (err, socket) => this.opts.log.debug({ remote: socket.remoteAddress, err: errorMessage(err) }, 'TLS handshake failed'));
    // A client that opens a socket and says nothing must not hold it for ever.
    server.headersTimeout = 10_000;
    server.requestTimeout = 60_000;
    // Longer than clients keep idle pooled connections, so they never reuse one we are closing.
    server.keepAliveTimeout = 65_000;
    this.https = server;
  }

  /** Serve the API on a unix socket only the owner of the data dir can open. */
  async listenLocal(socketPath: string): Promise<void> {
    fs.rmSync(socketPath, { force: true }); // a stale one from a killed daemon; the data dir lock says it is ours
    const server = http.createServer((req, res) => void this.handle(req, res, true));
    const umask = process.umask(0o177);
    try {
      await listenOn(server, (cb) => server.listen(socketPath, cb));
    } finally {
      process.umask(umask);
    }
    fs.chmodSync(socketPath, 0o600);
    this.local = server;
    this.localPath = socketPath;
  }

  async close(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    // A client's idle keep-alive connection would otherwise hold the close (and the daemon's exit) for a minute.
    for (const socket of this.sockets) socket.destroy();
    this.local?.closeAllConnections();
    await Promise.all([this.tcp, this.https, this.local].flatMap((s) => (s?.listening ? [new Promise<void>((r) => s.close(() => r()))] : [])));
    if (this.localPath) fs.rmSync(this.localPath, { force: true });
  }

  /** Settle who is calling, or throw a 401/429 that says why not. */
  private async authenticate(req: http.IncomingMessage, access: Access, local: boolean): Promise<Caller> {
    if (local) return { kind: 'local' };
    if (access === 'public') return { kind: 'anonymous' };
    const remote = req.socket.remoteAddress ?? 'unknown';
    const nodeId = peerNodeId(req.socket as TLSSocket);
    // Member nodes are known by their certificates and never rate-limited.
    if (typeof nodeId === 'string' && access !== 'join' && this.opts.auth.isMember(nodeId)) return { kind: 'node', id: nodeId };
    const limited = this.failures.get(remote);
    if (limited && limited.resetAt > Date.now() && limited.count >= MAX_FAILURES_PER_MINUTE) {
      const wait = Math.ceil((limited.resetAt - Date.now()) / 1000);
      throw new UserError(`too many failed authentication attempts from ${remote}; wait ${wait} s`, 429, 'rate_limited');
    }
    let reason: string;
    if (typeof nodeId === 'string' && access !== 'join') {
      reason = `node ${nodeId} was removed from the cluster; its certificate is no longer accepted`;
    } else if (access === 'peer') {
      reason = 'only member nodes, with a certificate from the cluster CA, may connect here';
    } else {
      const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
      const kind = access === 'join' ? 'join' : 'api';
      if (!m) {
        reason = kind === 'join' ? 'missing join token' : 'missing token: pass --token or set FIRECAMPD_TOKEN';
      } else {
        const v = await this.opts.auth.checkToken(m[1], kind);
        if (v.ok) return kind === 'join' ? { kind: 'join', id: v.id } : { kind: 'token', id: v.id };
        reason = `${kind === 'join' ? 'join' : 'API'} token refused: ${v.reason}`;
      }
    }
    const now = Date.now();
    const f = limited && limited.resetAt > now ? limited : { count: 0, resetAt: now + 60_000 };
    f.count++;
    this.failures.set(remote, f);
    if (this.failures.size > 10_000) this.forgetOldFailures(now);
    this.opts.log.warn({ remote, path: req.url?.split('?')[0], reason }, 'refused an unauthenticated request');
    throw new UserError(reason, 401, 'unauthorized');
  }

  private forgetOldFailures(now: number): void {
    for (const [k, v] of this.failures) if (v.resetAt <= now) this.failures.delete(k);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, local = false): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://firecampd');
    const method = req.method ?? 'GET';
    try {
      const route = this.routes.get(`${method} ${url.pathname}`);
      if (!route) {
        await this.authenticate(req, 'api', local);
        const known = [...this.routes.keys()].some((k) => k.endsWith(` ${url.pathname}`));
        throw known
          ? new UserError(`${method} is not allowed on ${url.pathname}`, 405, 'method_not_allowed')
          : new UserError(`no such endpoint: ${url.pathname}`, 404, 'not_found');
      }
      const caller = await this.authenticate(req, route.access, local);
      const body = method === 'GET' || method === 'HEAD' ? undefined : await readJsonBody(req);
      const result = await route.handler({ method, path: url.pathname, query: url.searchParams, body, raw: req, caller });
      if (result instanceof StreamResponse) {
        res.writeHead(200, { 'content-type': result.contentType, 'cache-control': 'no-store' });
        res.flushHeaders();
        try {
          res.on('close', result.start(res));
        } catch (err) {
          // The status is sent already: all that is left is to cut the stream short.
          this.opts.log.error({ err, path: url.pathname }, 'stream failed');
          res.destroy();
        }
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

  private async handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://firecampd').pathname;
    const handler = this.upgrades.get(path);
    if (!handler) {
      // A peer dialing a node that is still starting finds no handler yet: not worth a warning.
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    let caller: Caller;
    try {
      caller = await this.authenticate(req, 'peer', false);
    } catch (err) {
      const status = err instanceof UserError ? err.status : 500;
      socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\n\r\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => handler(ws, req, caller));
  }
}

function listenOn(server: net.Server, listen: (cb: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    listen(() => {
      server.off('error', reject);
      resolve();
    });
  });
}

function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The request's JSON body. By its events, not `for await`: an async iterator cost every API request several promise turns. */
function readJsonBody(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit keep reading but drop the bytes, so the client gets our 413 rather than a reset.
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('the client went away before its request body ended'));
    });
    req.once('end', () => {
      if (size > MAX_BODY_BYTES) return reject(new UserError(`request body is larger than ${MAX_BODY_BYTES} bytes`, 413, 'too_large'));
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(new UserError(`request body is not valid JSON: ${errorMessage(err)}`, 400, 'bad_json'));
      }
    });
  });
}

/** The node a kept-alive connection's client certificate names, by socket: getPeerCertificate() builds a whole object. */
const peerNodeIds = new WeakMap<TLSSocket, string | undefined>();

function peerNodeId(tls: TLSSocket): string | undefined {
  if (!tls.authorized) return undefined;
  if (!peerNodeIds.has(tls)) {
    const cn = tls.getPeerCertificate().subject?.CN;
    peerNodeIds.set(tls, typeof cn === 'string' ? cn : undefined);
  }
  return peerNodeIds.get(tls);
}
