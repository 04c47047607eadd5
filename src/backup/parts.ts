// A backup part is made on the node that runs its member: the type's dump
// command runs in the member's container with its output streamed, not held,
// through the seal (Brotli, AES-256-GCM) to the target, and only what the
// member's node sealed leaves it. The leader asks for each part over the
// peers-only route, and the node refuses a member it does not hold at the
// epoch meant, as member-exec does.
import type Docker from 'dockerode';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import type { ApiServer } from '../api/server.ts';
import type { ControlDb, Forwarder } from '../controldb/controldb.ts';
import { UserError } from '../errors.ts';
import { execStream } from '../agent/docker.ts';
import type { MemberSpec } from '../agent/members.ts';
import { readMember } from '../catalog/records.ts';
import { keyById } from './keys.ts';
import type { BackupPart } from './records.ts';
import { sealing, Tally } from './seal.ts';
import { openTarget } from './target.ts';

export const PART_PATH = '/v1/member/backup-part';

const partBody = z
  .object({
    service: z.string(),
    member: z.string(),
    epoch: z.number().int().positive(),
    name: z.string().regex(/^[a-z0-9-]{1,32}$/),
    cmd: z.array(z.string()).min(1),
    target: z.string(),
    key: z.string(),
    keyId: z.string(),
  })
  .strict();
export type PartRequest = z.infer<typeof partBody>;

export interface PartDeps {
  db: ControlDb;
  selfId: string;
  docker: () => Docker | undefined;
}

/** Seal `source` into object `key` on the target; what the manifest says of it. On failure the object is removed; `ended` says how the source's maker ended. */
async function sealPart(
  db: ControlDb,
  source: NodeJS.ReadableStream,
  p: { member: string; name: string; target: string; key: string; keyId: string },
  ended: () => Promise<void> = async () => {},
): Promise<BackupPart> {
  const key = keyById(db, p.keyId);
  const target = openTarget(p.target, db.store);
  const raw = new Tally();
  const sealed = new Tally();
  const [compress, encrypt] = sealing(key);
  const stored = target.put(p.key, sealed);
  try {
    await Promise.all([pipeline(source, raw, compress, encrypt, sealed), stored]);
    await ended();
  } catch (err) {
    await target.deletePrefix(p.key).catch(() => {});
    throw err;
  }
  return { member: p.member, name: p.name, key: p.key, bytes: sealed.bytes, sha256: sealed.digest(), rawBytes: raw.bytes };
}

/** Dump, seal and store one part here; what the manifest says of it. */
async function makePart(d: PartDeps, spec: MemberSpec, b: PartRequest): Promise<BackupPart> {
  const docker = d.docker();
  if (!docker) throw new UserError('this node cannot reach its Docker engine', 503, 'unavailable');
  await d.db.linearize(); // the key may have been made a moment ago, on another node
  const { stdout, done } = await execStream(docker, spec, b.cmd);
  return sealPart(d.db, stdout, { ...b, member: spec.name }, async () => {
    const { exitCode, stderr } = await done;
    if (exitCode !== 0) throw new Error(`${b.cmd[0]} in ${spec.name} exited ${exitCode}: ${stderr.trim().split('\n').slice(-2).join(' / ')}`);
  });
}

/** A part the leader made itself (PartContent), sealed and stored from here. */
export function storeContentPart(
  db: ControlDb,
  p: { member: string; name: string; content: Buffer; target: string; key: string; keyId: string },
): Promise<BackupPart> {
  return sealPart(db, Readable.from([p.content]), p);
}

function heldHere(d: PartDeps, b: PartRequest): MemberSpec {
  const spec = readMember(d.db.store, b.service, b.member)?.value;
  if (!spec) throw new UserError(`no member ${b.member} in service ${b.service}`, 404, 'not_found');
  if (spec.node !== d.selfId || spec.epoch !== b.epoch)
    throw new UserError(`${b.member} at epoch ${b.epoch} is not this node's (${d.selfId}) as far as it knows`, 409, 'moved');
  return spec;
}

/** The node's side. */
export function registerPartRoute(api: ApiServer, d: PartDeps): void {
  api.route(
    'POST',
    PART_PATH,
    async (req) => {
      const b = partBody.parse(req.body);
      return makePart(d, heldHere(d, b), b);
    },
    'peer',
  );
}

/** The leader's side: one part of a member, wherever it runs. */
export type PartMaker = (spec: MemberSpec, req: Omit<PartRequest, 'service' | 'member' | 'epoch'>) => Promise<BackupPart>;

export function partMaker(d: PartDeps & { forward: Forwarder }): PartMaker {
  return async (spec, r) => {
    const b: PartRequest = { ...r, service: spec.service, member: spec.name, epoch: spec.epoch };
    if (spec.node === d.selfId) return makePart(d, heldHere(d, b), b);
    return (await d.forward(spec.node, 'POST', PART_PATH, b)) as BackupPart;
  };
}
