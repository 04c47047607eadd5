// `firecampd service logs`: a member's container logs, from whichever node
// runs it. The node asked streams them itself if the member is its own, or
// relays the stream from the member's node over mutual TLS.
import { readMember } from './records.ts';
import https from 'node:https';
import { PassThrough, Readable } from 'node:stream';
import type Docker from 'dockerode';
import { StreamResponse, type ApiServer } from '../api/server.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import type { NodeTls } from '../security/pki.ts';
import { containerName } from '../agent/members.ts';
import { noSuchService, serviceKey } from './types.ts';

export interface LogsDeps {
  db: ControlDb;
  selfId: string;
  tls: NodeTls;
  address: (id: string) => string | undefined;
  /** This node's Docker engine, once the agent reached it. */
  docker: () => Docker | undefined;
}

export function registerLogRoutes(api: ApiServer, d: LogsDeps): void {
  api.route('GET', '/v1/service/logs', async (req) => {
    const service = req.query.get('name') ?? '';
    const member = req.query.get('member') || `${service}-0`;
    const follow = req.query.get('follow') === 'true';
    const tail = Number(req.query.get('tail') ?? 100);
    await d.db.linearize();
    if (!d.db.store.get(serviceKey(service))) throw noSuchService(service);
    const spec = readMember(d.db.store, service, member)?.value;
    if (!spec) throw new UserError(`no member ${member} in service ${service} (see "firecampd service get ${service}")`, 404, 'not_found');
    if (spec.node !== d.selfId) return relay(d, spec.node, req.raw.url!);
    const docker = d.docker();
    if (!docker) throw new UserError('this node cannot reach its Docker engine', 503, 'unavailable');
    let logs: NodeJS.ReadableStream;
    try {
      const opts = { stdout: true, stderr: true, tail: Number.isInteger(tail) && tail >= 0 ? tail : 100 };
      const c = docker.getContainer(containerName(spec));
      // dockerode gives a stream when following and the whole (still multiplexed) payload otherwise.
      logs = follow ? await c.logs({ ...opts, follow: true }) : Readable.from([await c.logs({ ...opts, follow: false })]);
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) throw new UserError(`${member} has no container on its node yet`, 404, 'not_found');
      throw err;
    }
    return new StreamResponse('text/plain; charset=utf-8', (res) => {
      // Without a TTY, Docker multiplexes stdout and stderr in one stream of framed chunks.
      const out = new PassThrough();
      docker.modem.demuxStream(logs, out, out);
      out.pipe(res);
      logs.on('end', () => res.end());
      return () => (logs as unknown as { destroy?: () => void }).destroy?.();
    });
  });
}

function relay(d: LogsDeps, node: string, url: string): StreamResponse {
  const addr = d.address(node);
  if (!addr) throw new UserError(`the node ${node} that runs the member has no known address`, 503, 'unavailable');
  const target = new URL(`https://${addr}${url}`);
  return new StreamResponse('text/plain; charset=utf-8', (res) => {
    const req = https.get(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        ca: d.tls.caPem,
        cert: d.tls.certPem,
        key: d.tls.keyPem,
        checkServerIdentity: (_h, cert) => (cert.subject?.CN === node ? undefined : new Error(`expected node ${node}`)),
      },
      (up) => up.pipe(res),
    );
    req.on('error', (err) => res.end(`\n[firecampd: lost the log stream from node ${node}: ${err.message}]\n`));
    return () => req.destroy();
  });
}
