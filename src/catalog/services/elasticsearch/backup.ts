// Elasticsearch/OpenSearch backups through the snapshot API, the way its
// community takes them: a snapshot of every index (not the cluster's global
// state: its settings are firecampd's) into a repository of type fs.
//
// The repository is on the members' own volumes, not on the target: a new
// one per backup, under path.repo, registered without verification (no two
// nodes share the directory). Each node writes there what it snapshots (the
// shards whose primary it holds; the elected cluster manager, the
// repository's metadata), so the repository is the union of the members'
// directories: each member's is one part of the backup, sealed and stored by
// the kit as any part (encrypted, on a directory or a bucket, without the
// repository plugin). The registration goes once the snapshot is made, each
// member's directory once its part is stored.
//
// A restored service's members each get every part, merged into one
// directory (the whole repository) before their first start; once the
// cluster forms, the type's apply registers it read-only and restores its
// indices, waits for them to be green, then removes the repository.
import { z } from 'zod';
import { memberIndex } from '../../../agent/members.ts';
import { execOk } from '../../member-exec.ts';
import type { MemberRestore, PlacedMember, TypeBackup } from '../../types.ts';
import { notSettled, rest } from './cluster-api.ts';

const DATA = '/data';
/** path.repo: every repository firecampd registers is under it. */
export const SNAPSHOTS = `${DATA}/snapshots`;
/** Where a restored member's parts are unpacked, one directory each, relative to its volume. */
const RESTORE_DIR = 'restore-repo';
/** The repository a restored member's parts make, merged. */
const RESTORED = `${SNAPSHOTS}/restored`;
const REPO_PREFIX = 'firecampd-';
const RESTORED_REPO = `${REPO_PREFIX}restored`;
const SNAPSHOT = 'snapshot';
export const REPO_PART = 'repo';
export const SNAPSHOT_PART = 'snapshot';

const snapshotSchema = z.object({ format: z.literal(1), repository: z.string(), snapshot: z.string(), indices: z.array(z.string()) }).strict();

interface SnapshotInfo {
  snapshot: { state: string; indices: string[]; shards: { total: number; failed: number }; failures?: { reason?: string }[] };
}

/** The first member that answers, the lowest index first. */
async function answering(members: PlacedMember[]): Promise<string> {
  let last = '';
  for (const m of [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))) {
    try {
      await rest(m.host, 'GET', '/');
      return m.host;
    } catch (err) {
      last = (err as Error).message;
    }
  }
  throw new Error(`no member answers: ${last}`);
}

/** A member's part: its directory of the backup's repository, as a tar on stdout; removed once read. */
const partScript = (repo: string) => ['set -e', `d=${SNAPSHOTS}/${repo}`, `trap 'rm -rf "$d"' EXIT`, 'mkdir -p "$d"', 'cd "$d"', 'tar -cf - .'].join('\n');

/** What the start script runs before OpenSearch's first start from a backup: every member's part merged into one repository. */
export function restoreScript(): string {
  const R = `${DATA}/${RESTORE_DIR}`;
  return `mkdir -p ${SNAPSHOTS}
if [ -d ${R} ]; then
  echo "firecampd: merging the backup's repository" >&2
  mkdir -p ${RESTORED}
  for d in ${R}/*; do
    if [ -d "$d" ]; then cp -a "$d"/. ${RESTORED}/; fi
  done
  rm -rf ${R}
fi
`;
}

export const searchBackup: TypeBackup = {
  async parts(spec, members, ctx) {
    const host = await answering(members);
    // A registration a backup that failed midway left behind.
    const repos = await rest<Record<string, unknown>>(host, 'GET', '/_snapshot/_all');
    for (const r of Object.keys(repos).filter((r) => r.startsWith(REPO_PREFIX))) await rest(host, 'DELETE', `/_snapshot/${r}`);
    const repository = `${REPO_PREFIX}${Date.now()}`;
    await rest(host, 'PUT', `/_snapshot/${repository}?verify=false`, { type: 'fs', settings: { location: `${SNAPSHOTS}/${repository}` } });
    let info: SnapshotInfo;
    try {
      info = await rest<SnapshotInfo>(
        host,
        'PUT',
        `/_snapshot/${repository}/${SNAPSHOT}?wait_for_completion=true`,
        { indices: '*,-.*', include_global_state: false },
        3_600_000,
      );
    } finally {
      // The files stay, for the parts; the registration is not needed to read them.
      await rest(host, 'DELETE', `/_snapshot/${repository}`).catch(() => {});
    }
    const s = info.snapshot;
    if (s.state !== 'SUCCESS' || s.shards.failed > 0)
      throw new Error(`the snapshot ended ${s.state} with ${s.shards.failed} of ${s.shards.total} shards failed: ${s.failures?.[0]?.reason ?? ''}`);
    ctx.log.info({ service: spec.name, indices: s.indices.length, shards: s.shards.total }, 'elasticsearch: snapshot made');
    const meta = { format: 1, repository, snapshot: SNAPSHOT, indices: s.indices.sort() };
    return [
      ...members.map((m) => ({ member: m.spec.name, name: REPO_PART, cmd: ['sh', '-c', partScript(repository)] })),
      { member: members[0].spec.name, name: SNAPSHOT_PART, content: Buffer.from(JSON.stringify(meta)) },
    ];
  },

  /** Every member gets every member's part: together they are the repository, which any node may need to read. */
  restore(spec): MemberRestore | undefined {
    const parts = (spec.restore?.parts ?? []).filter((p) => p.name === REPO_PART);
    if (parts.length === 0) return undefined;
    return { parts: parts.map((p) => ({ index: p.index, name: REPO_PART, path: `${RESTORE_DIR}/${p.index}`, unpack: 'tar' as const })), files: [] };
  },

  async apply(spec, members, ctx, part) {
    const meta = snapshotSchema.parse(JSON.parse((await part(SNAPSHOT_PART)).toString('utf8')));
    const host = await answering(members);
    const have = new Set((await rest<{ index: string }[]>(host, 'GET', '/_cat/indices?format=json&h=index')).map((r) => r.index));
    if (meta.indices.some((i) => !have.has(i))) {
      await rest(host, 'PUT', `/_snapshot/${RESTORED_REPO}?verify=false`, { type: 'fs', settings: { location: RESTORED, readonly: true } });
      await rest(host, 'POST', `/_snapshot/${RESTORED_REPO}/${meta.snapshot}/_restore`, { indices: meta.indices.join(','), include_global_state: false });
      ctx.log.info({ service: spec.name, indices: meta.indices.length }, 'elasticsearch: restoring the indices of the backup');
      return `restoring ${meta.indices.length} indices from the backup's snapshot`;
    }
    // Settled as the type counts it: every primary active, and every copy that has somewhere to go there too.
    const why = await notSettled(host);
    if (why) return `waiting for the restored indices to recover from the snapshot: ${why}`;
    // Restored: the repository goes, from the cluster and from every member's volume.
    await rest(host, 'DELETE', `/_snapshot/${RESTORED_REPO}`).catch(() => {});
    for (const m of members) await execOk(ctx.exec, m.spec, ['rm', '-rf', RESTORED]);
    return undefined;
  },

  async check(_spec, members) {
    const host = await answering(members);
    const rows = (
      await rest<{ index: string; health: string; 'docs.count': string }[]>(host, 'GET', '/_cat/indices?format=json&h=index,health,docs.count')
    ).filter((r) => !r.index.startsWith('.'));
    const red = rows.filter((r) => r.health === 'red').map((r) => r.index);
    if (red.length > 0) throw new Error(`indices ${red.join(', ')} are red`);
    const docs = rows.reduce((n, r) => n + Number(r['docs.count'] ?? 0), 0);
    return `${rows.length} indices, ${docs} documents`;
  },
};
