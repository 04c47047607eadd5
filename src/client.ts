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

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    if (!this.token) {
      throw new UserError('no token: pass --token or set FIRECAMPD_TOKEN (a node keeps its own in <data-dir>/token)');
    }
    let res: Response;
    try {
      res = await fetch(this.base + path, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new UserError(`cannot reach firecampd at ${this.base}: ${errorMessage(cause ?? err)}`, 503, 'unreachable');
    }
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
}
