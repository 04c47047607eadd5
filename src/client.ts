// The CLI's side of the HTTP API.
import { DEFAULT_PORT, defaultDataDir, formatHostPort, parseHostPort } from './config.ts';
import { readLocalToken } from './datadir.ts';
import { UserError, errorMessage } from './errors.ts';

export interface ClientOptions {
  addr?: string;
  token?: string;
  dataDir?: string;
}

export class ApiClient {
  readonly base: string;
  private readonly token: string | undefined;

  constructor(opts: ClientOptions) {
    const hp = parseHostPort(opts.addr ?? `127.0.0.1:${DEFAULT_PORT}`, DEFAULT_PORT, '--addr');
    this.base = `http://${formatHostPort({ host: hp.host || '127.0.0.1', port: hp.port })}`;
    this.token = opts.token ?? readLocalToken(opts.dataDir ?? defaultDataDir());
  }

  private async send(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
    if (!this.token) {
      throw new UserError('no token: pass --token or set FIRECAMPD_TOKEN (a node keeps its own in <data-dir>/token)');
    }
    try {
      return await fetch(this.base + path, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new UserError(`cannot reach firecampd at ${this.base}: ${errorMessage(cause ?? err)}`, 503, 'unreachable');
    }
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
    const res = await this.send(method, path, body, headers);
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      throw new UserError(`${this.base}${path} answered ${res.status} with something other than JSON`, 502, 'bad_gateway');
    }
    if (!res.ok) {
      const e = (json as { error?: { message?: string; code?: string } }).error;
      throw new UserError(e?.message ?? `HTTP ${res.status}`, res.status, e?.code ?? 'error');
    }
    return json as T;
  }

  /** A binary response body (snapshot download). */
  async download(path: string): Promise<Buffer> {
    const res = await this.send('GET', path);
    if (!res.ok) {
      const e = ((await res.json().catch(() => ({}))) as { error?: { message?: string } }).error;
      throw new UserError(e?.message ?? `HTTP ${res.status}`, res.status);
    }
    return Buffer.from(await res.arrayBuffer());
  }

  /** Lines of a streaming (NDJSON) response, as they arrive. */
  async *stream(path: string): AsyncGenerator<string> {
    const res = await this.send('GET', path);
    if (!res.ok || !res.body) {
      const text = await res.text();
      let message = `HTTP ${res.status}`;
      try {
        message = (JSON.parse(text) as { error: { message: string } }).error.message;
      } catch {
        /* keep the status */
      }
      throw new UserError(message, res.status);
    }
    const decoder = new TextDecoder();
    let buf = '';
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) yield line;
      }
    }
  }
}
