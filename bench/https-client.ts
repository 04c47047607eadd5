// The one HTTP client of bench:controldb, used for firecampd and etcd alike:
// Node's own https module, one kept-alive https.Agent per system, JSON bodies,
// one HTTP request per call. What a system gets differently is only what it
// is given here: its CA and its extra headers (firecampd's bearer token).
import https from 'node:https';

export interface JsonAnswer {
  status: number;
  /** The parsed body; {} when it was empty. */
  json: any;
}

export class BenchClient {
  private readonly agent: https.Agent;
  private readonly targets = new Map<string, { host: string; port: number }>();

  /**
   * @param ca the PEM of the CA that signed the servers' certificates
   * @param headers sent with every request (firecampd: its Authorization)
   * @param maxSockets at least the number of concurrent callers, so that none waits for a socket
   */
  constructor(
    ca: string,
    private readonly headers: Record<string, string>,
    maxSockets: number,
    private readonly timeoutMs = 30_000,
  ) {
    // Both CAs are private to this run; host names are not checked for either
    // system (firecampd's own client does not check them either).
    this.agent = new https.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ca, checkServerIdentity: () => undefined });
  }

  /** One request to `base` ("https://host:port"); resolves with any status, rejects on a network error or after timeoutMs. */
  request(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<JsonAnswer> {
    const target = this.target(base);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<JsonAnswer>((resolve, reject) => {
      const req = https.request(
        {
          host: target.host,
          port: target.port,
          method,
          path,
          agent: this.agent,
          headers: {
            ...this.headers,
            ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) }),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            try {
              resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} });
            } catch {
              reject(new Error(`${base}${path} answered ${res.statusCode} with something other than JSON: ${text.slice(0, 200)}`));
            }
          });
        },
      );
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${base}${path}: no answer in ${this.timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }

  private target(base: string): { host: string; port: number } {
    let t = this.targets.get(base);
    if (!t) {
      const u = new URL(base);
      this.targets.set(base, (t = { host: u.hostname, port: Number(u.port) }));
    }
    return t;
  }
}
