// The CLI's side of the HTTP API. On a node, with no --addr, it uses the
// node's unix socket (no token needed); otherwise HTTPS, verifying the node
// against the cluster CA: from --ca-file, from the data dir, or fetched once
// and pinned by the digest that every firecampd token carries.
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { DEFAULT_PORT, defaultDataDir, formatHostPort, parseHostPort } from './config.ts';
import { UserError, errorMessage } from './errors.ts';
import { caDigest, TLS_DIR } from './security/pki.ts';
import { parseToken } from './security/tokens.ts';

export const LOCAL_SOCKET = 'firecampd.sock';

export interface ClientOptions {
  addr?: string;
  token?: string;
  dataDir?: string;
  /** The cluster CA (PEM) or a file holding it. */
  ca?: string;
  caFile?: string;
  /** A node's own certificate, for calls between nodes. */
  cert?: { certPem: string; keyPem: string };
  /** Keep connections open between requests (long-lived callers; a CLI run would wait on them). */
  keepAlive?: boolean;
  /** Give up on a request that has not answered in this long. */
  timeoutMs?: number;
}

export interface RawResult {
  status: number;
  /** The parsed body, as the server sent it: the caller checks its shape. */
  json: unknown;
}

/** The body of an API error answer. */
export interface ApiErrorBody {
  error?: { message?: string; code?: string };
}

export class ApiClient {
  readonly base: string;
  private readonly token: string | undefined;
  private readonly socketPath: string | undefined;
  private ca: string | undefined;
  /** The CA of the node whose data dir this machine has: the cluster's only if no token names another. */
  private localCa: string | undefined;
  private readonly agent: http.Agent;

  constructor(private readonly opts: ClientOptions) {
    const dataDir = opts.dataDir ?? defaultDataDir();
    const socket = path.join(dataDir, LOCAL_SOCKET);
    this.token = opts.token;
    if (opts.addr === undefined && !opts.token && canOpen(socket)) {
      this.socketPath = socket;
      this.base = `unix:${socket}`;
      this.agent = new http.Agent({ keepAlive: opts.keepAlive ?? false });
      return;
    }
    const hp = parseHostPort(opts.addr ?? `127.0.0.1:${DEFAULT_PORT}`, DEFAULT_PORT, '--addr');
    this.base = `https://${formatHostPort({ host: hp.host || '127.0.0.1', port: hp.port })}`;
    this.ca = opts.ca ?? (opts.caFile ? readCa(opts.caFile) : undefined);
    this.localCa = readIfExists(path.join(dataDir, TLS_DIR, 'ca.crt'));
    this.agent = new https.Agent({ keepAlive: opts.keepAlive ?? false, ...(opts.cert ? { cert: opts.cert.certPem, key: opts.cert.keyPem } : {}) });
  }

  /** Make one request and return its status and JSON body, whatever the status. */
  async raw(method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<RawResult> {
    const res = await this.send(method, urlPath, body, headers);
    const text = (await readAll(res)).toString('utf8');
    try {
      return { status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : {} };
    } catch {
      throw new UserError(`${this.base}${urlPath} answered ${res.statusCode} with something other than JSON`, 502, 'bad_gateway');
    }
  }

  async request<T = unknown>(method: string, urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const r = await this.raw(method, urlPath, body, headers);
    if (r.status < 200 || r.status >= 300) throw errorOf(r);
    return r.json as T;
  }

  /** A binary response body (snapshot download). */
  async download(urlPath: string): Promise<Buffer> {
    const res = await this.send('GET', urlPath);
    const body = await readAll(res);
    if (res.statusCode !== 200) throw errorOf({ status: res.statusCode ?? 0, json: parseOr(body) });
    return body;
  }

  /** Lines of a streaming (NDJSON) response, as they arrive. */
  async *stream(urlPath: string, signal?: AbortSignal): AsyncGenerator<string> {
    const res = await this.send('GET', urlPath, undefined, {}, signal);
    if (res.statusCode !== 200) throw errorOf({ status: res.statusCode ?? 0, json: parseOr(await readAll(res)) });
    let buf = '';
    res.setEncoding('utf8');
    for await (const chunk of res as AsyncIterable<string>) {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) yield line;
      }
    }
  }

  close(): void {
    this.agent.destroy();
  }

  private async send(
    method: string,
    urlPath: string,
    body?: unknown,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<http.IncomingMessage> {
    if (!this.socketPath && !this.token && !this.opts.cert) {
      throw new UserError('no token: pass --token or set FIRECAMPD_TOKEN (on a node, run the CLI as the user that runs firecampd to use its local socket)');
    }
    const ca = this.socketPath ? undefined : await this.clusterCa();
    // A Buffer goes as it is (tests send malformed JSON); anything else as JSON.
    const payload = body === undefined ? undefined : Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const target = this.socketPath ? { socketPath: this.socketPath } : new URL(this.base);
    try {
      return await new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = (this.socketPath ? http : https).request(
          {
            ...(this.socketPath ? { socketPath: this.socketPath } : { host: (target as URL).hostname.replace(/^\[|\]$/g, ''), port: (target as URL).port }),
            path: urlPath,
            method,
            signal,
            agent: this.agent,
            ca,
            // The CA is the cluster's own: any certificate it signed is a node
            // of this cluster, whatever address the user typed to reach it.
            checkServerIdentity: () => undefined,
            headers: {
              ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
              ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
              ...headers,
            },
          },
          resolve,
        );
        req.on('error', reject);
        if (this.opts.timeoutMs) req.setTimeout(this.opts.timeoutMs, () => req.destroy(new Error(`no answer in ${this.opts.timeoutMs} ms`)));
        req.end(payload);
      });
    } catch (err) {
      // A refused connection means the request never arrived; callers may retry it safely.
      const refused = (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
      throw new UserError(`cannot reach firecampd at ${this.base}: ${errorMessage(err)}`, 503, refused ? 'refused' : 'unreachable');
    }
  }

  /**
   * The CA to verify the node with: the one given; else, for a token that
   * names its cluster's CA digest, the local data dir's CA if it is that one,
   * or the CA fetched and pinned by that digest; else the local data dir's.
   */
  private async clusterCa(): Promise<string> {
    if (this.ca) return this.ca;
    const digest = this.token ? parseToken(this.token).caDigest : undefined;
    if (this.localCa && (!digest || caDigest(this.localCa) === digest)) return (this.ca = this.localCa);
    if (!digest) {
      throw new UserError(
        'cannot verify the node: pass --ca-file with the cluster CA (ca.crt in a node\'s <data-dir>/tls), or use a token made by "firecampd token create"',
      );
    }
    this.ca = await fetchPinnedCa(this.base, digest);
    return this.ca;
  }
}

/**
 * Fetch a cluster's CA certificate from a node we cannot verify yet, and keep
 * it only if its digest is the one we were given: a man in the middle can
 * answer, but not with a CA whose digest matches.
 */
export async function fetchPinnedCa(base: string, digest: string): Promise<string> {
  const url = new URL('/v1/cluster/ca', base);
  let pem: string;
  try {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = https.request(
        { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, path: url.pathname, rejectUnauthorized: false, timeout: 10_000 },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
      req.on('error', reject);
      req.end();
    });
    pem = (parseOr(await readAll(res)) as { ca?: string }).ca ?? '';
  } catch (err) {
    throw new UserError(`cannot reach firecampd at ${base}: ${errorMessage(err)}`, 503, 'unreachable');
  }
  let got: string;
  try {
    got = caDigest(pem);
  } catch {
    throw new UserError(`${base} did not send a CA certificate`, 502, 'bad_gateway');
  }
  if (got !== digest) {
    throw new UserError(
      `${base} presented a CA whose digest ${got.slice(0, 16)}… is not the token's ${digest.slice(0, 16)}…: another cluster, or a man in the middle`,
      495,
      'ca_mismatch',
    );
  }
  return pem;
}

function errorOf(r: RawResult): UserError {
  const e = (r.json as ApiErrorBody | undefined)?.error;
  return new UserError(e?.message ?? `HTTP ${r.status}`, r.status, e?.code ?? 'error');
}

function parseOr(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return {};
  }
}

async function readAll(res: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

function canOpen(socket: string): boolean {
  try {
    fs.accessSync(socket, fs.constants.R_OK | fs.constants.W_OK);
    return fs.statSync(socket).isSocket();
  } catch {
    return false;
  }
}

function readIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readCa(file: string): string {
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
    new X509Certificate(pem);
  } catch (err) {
    throw new UserError(`--ca-file ${file}: ${errorMessage(err)}`);
  }
  return pem;
}
