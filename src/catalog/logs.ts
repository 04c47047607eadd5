// `firecampd service logs`: a member's output as its volume keeps it (the
// node's log keeper, src/agent/logs/), across its moves and restarts, from
// whichever node runs it now. The node asked answers itself if the member is
// its own, or relays the stream from the member's node over mutual TLS.
import { readMember } from './records.ts';
import https from 'node:https';
import { StreamResponse, type ApiServer } from '../api/server.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import type { NodeTls } from '../security/pki.ts';
import type { MemberLogFiles } from '../agent/logs/files.ts';
import { followKept, parseSince, readKept, shown } from '../agent/logs/read.ts';
import { noSuchService, serviceKey } from './types.ts';

export interface LogsDeps {
  db: ControlDb;
  selfId: string;
  tls: NodeTls;
  address: (id: string) => string | undefined;
  /** The kept log of a member this node holds now (its volume mounted here), if it does. */
  keptLog: (service: string, member: string) => MemberLogFiles | undefined;
}

export function registerLogRoutes(api: ApiServer, d: LogsDeps): void {
  api.route('GET', '/v1/service/logs', async (req) => {
    const service = req.query.get('name') ?? '';
    const member = req.query.get('member') || `${service}-0`;
    const follow = req.query.get('follow') === 'true';
    const previous = req.query.get('previous') === 'true';
    const timestamps = req.query.get('timestamps') === 'true';
    const tailParam = req.query.get('tail');
    const tail = tailParam === null || tailParam === '' ? undefined : Number(tailParam);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new UserError(`--tail "${tailParam}" must be a whole number of lines (0 or more)`);
    const sinceParam = req.query.get('since');
    const since = sinceParam ? parseSince(sinceParam) : undefined;
    await d.db.linearize();
    if (!d.db.store.get(serviceKey(service))) throw noSuchService(service);
    const spec = readMember(d.db.store, service, member)?.value;
    if (!spec) throw new UserError(`no member ${member} in service ${service} (see "firecampd service get ${service}")`, 404, 'not_found');
    if (spec.node !== d.selfId) return relay(d, spec.node, req.raw.url!);
    const files = d.keptLog(service, member);
    if (!files) {
      throw new UserError(
        `${member} is not running on its node ${spec.node} now${spec.stopped ? ' (its service is stopped)' : ''}: its kept log is on its volume, readable once it runs again ("firecampd service get ${service}" shows where it is)`,
        503,
        'unavailable',
      );
    }
    const lines = readKept(files, { ...(since ? { since } : {}), previous, ...(tail !== undefined ? { tail } : {}), timestamps });
    return new StreamResponse('text/plain; charset=utf-8', (res) => {
      if (lines.length > 0) res.write(lines.join('\n') + '\n');
      if (!follow || previous) {
        res.end();
        return () => {};
      }
      return followKept(
        files,
        (fresh) => res.write(fresh.map((l) => shown(l, timestamps)).join('\n') + '\n'),
        () => d.keptLog(service, member) !== files,
        () =>
          res.end(
            `[firecampd: ${member} stopped on node ${d.selfId}; "firecampd service logs ${service} --member ${member} --follow" again follows it where it runs next]\n`,
          ),
      );
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
