// Running a program inside a member's container, for the catalog's steps that
// only the service's own tools can take (ZooKeeper's reconfig, Kafka's
// quorum and reassignment tools, Cassandra's nodetool). The leader asks the
// member's node over mutual TLS (a route for member nodes only); that node
// checks that it runs the member at the epoch the leader meant, so that a
// step never lands on a copy the cluster has already moved elsewhere, and
// runs the program with `docker exec`.
import { readMember } from './records.ts';
import type Docker from 'dockerode';
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import type { ControlDb } from '../controldb/controldb.ts';
import type { Forwarder } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { execInContainer, type ExecResult } from '../agent/docker.ts';
import type { MemberSpec } from '../agent/members.ts';

export const EXEC_PATH = '/v1/member/exec';

export interface ExecOptions {
  /** Given up after this long (the program itself is stopped by `timeout` in the container). Default 60 s. */
  timeoutMs?: number;
  /** "uid:gid" to run as; the member's own user unless given. */
  user?: string;
}

const execBody = z
  .object({
    service: z.string(),
    member: z.string(),
    epoch: z.number().int().positive(),
    cmd: z.array(z.string()).min(1),
    timeoutMs: z.number().int().positive().max(3_600_000),
    user: z.string().optional(),
  })
  .strict();

export interface ExecDeps {
  db: ControlDb;
  selfId: string;
  /** This node's Docker engine, once the agent reached it. */
  docker: () => Docker | undefined;
}

/** The node's side: run a program in a member it holds now, for the leader's catalog. */
export function registerExecRoute(api: ApiServer, d: ExecDeps): void {
  api.route(
    'POST',
    EXEC_PATH,
    async (req) => {
      const b = execBody.parse(req.body);
      const spec = readMember(d.db.store, b.service, b.member)?.value;
      if (!spec) throw new UserError(`no member ${b.member} in service ${b.service}`, 404, 'not_found');
      // This node's replica may lag the leader's by a little; a member it does not hold at that epoch is refused, and the leader asks again.
      if (spec.node !== d.selfId || spec.epoch !== b.epoch) {
        throw new UserError(`${b.member} at epoch ${b.epoch} is not this node's (${d.selfId}) as far as it knows`, 409, 'moved');
      }
      const docker = d.docker();
      if (!docker) throw new UserError('this node cannot reach its Docker engine', 503, 'unavailable');
      return execInContainer(docker, spec, b.cmd, b.timeoutMs, b.user);
    },
    'peer',
  );
}

/** The leader's side: run a program in a member wherever it runs. */
export type MemberExec = (spec: MemberSpec, cmd: string[], opts?: ExecOptions) => Promise<ExecResult>;

export function memberExec(d: ExecDeps & { forward: Forwarder }): MemberExec {
  return async (spec, cmd, opts = {}) => {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    if (spec.node === d.selfId) {
      const docker = d.docker();
      if (!docker) throw new Error('this node cannot reach its Docker engine');
      return execInContainer(docker, spec, cmd, timeoutMs, opts.user);
    }
    const body = { service: spec.service, member: spec.name, epoch: spec.epoch, cmd, timeoutMs, ...(opts.user ? { user: opts.user } : {}) };
    return (await d.forward(spec.node, 'POST', EXEC_PATH, body)) as ExecResult;
  };
}

/** The program's stdout, or an error with what it said when it failed. */
export async function execOk(exec: MemberExec, spec: MemberSpec, cmd: string[], opts?: ExecOptions): Promise<string> {
  const r = await exec(spec, cmd, opts);
  if (r.exitCode !== 0) {
    const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ');
    throw new Error(`${cmd.join(' ')} in ${spec.name} exited ${r.exitCode}${said ? `: ${said}` : ''}`);
  }
  return r.stdout;
}
