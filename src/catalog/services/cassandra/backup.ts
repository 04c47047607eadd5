// Cassandra's backups, the way its community takes them (nodetool snapshot,
// as Medusa does): every member snapshots at once, so the members' copies are
// of one moment give or take the time a flush takes; each member's part is
// its snapshot of every keyspace but `system` (which holds the node's own
// identity and peers) with its tokens and its datacenter and rack; the
// snapshot is cleared from the member's disk once archived.
//
// A restored service has as many members as the backup's. Member i starts
// from member i's part: the snapshot's files moved into their tables (the
// schema comes along in system_schema, so each table keeps its id and its
// directory) and the source's tokens and rack given to the new node, so it
// owns the same ranges and holds the same data for them. Roles come back in
// system_auth, and the service's secrets with the backup.
import { memberIndex } from '../../../agent/members.ts';
import { errorMessage } from '../../../errors.ts';
import type { MemberRestore, PlacedMember, TypeBackup, TypeContext } from '../../types.ts';
import { CASSANDRA_ADMIN, DATA, STATE, jmxPort, nodetool, withCql } from './tools.ts';

/** Snapshots firecampd takes are named so, and only those are ever cleared by it. */
const TAG_PREFIX = 'firecampd-';
/** Where a member's part is unpacked, relative to its volume; its start script moves it into place at the first start. */
export const RESTORE_DIR = 'restore';
/** Where the part keeps what is not a table's file. */
const INFO = 'firecampd-backup';

/** The snapshots firecampd took and left behind (a backup that failed midway), as `nodetool listsnapshots` names them. */
export function ourSnapshots(listing: string): string[] {
  return [...new Set([...listing.matchAll(new RegExp(`^(${TAG_PREFIX}\\d+)\\s`, 'gm'))].map((m) => m[1]))];
}

/** The member's part: its snapshot's table files (all keyspaces but system), its tokens and its rack, as one tar on stdout. */
function partScript(m: PlacedMember, tag: string): string {
  const nt = `nodetool -p ${jmxPort(m.spec.ip!)}`;
  return [
    'set -e',
    `cd ${DATA}`,
    `trap '${nt} clearsnapshot -t ${tag} >/dev/null 2>&1 || true; rm -rf ${INFO}' EXIT`,
    `rm -rf ${INFO}; mkdir ${INFO}`,
    `${nt} info -T | sed -n 's/^Token *: *//p' | tr '\\n' ',' | sed 's/,$//' > ${INFO}/tokens`,
    `[ -s ${INFO}/tokens ] || { echo "nodetool info -T gave no tokens" >&2; exit 1; }`,
    `cp ${STATE}/rackdc.properties ${INFO}/`,
    // system holds this node's identity, its peers and its tokens: a restored node makes its own.
    `set -- $(ls -d data/*/*/snapshots/${tag} | grep -v '^data/system/')`,
    `[ $# -gt 0 ] || { echo "no snapshot ${tag} in ${DATA}/data" >&2; exit 1; }`,
    `tar -cf - ${INFO} "$@"`,
  ].join('\n');
}

/**
 * What the member's start script runs before Cassandra's first start from a backup: the snapshot's files into their
 * tables, the rack and tokens kept for the configuration. Safe to run again after a crash midway (what moved is gone
 * from the restore directory).
 */
export function restoreScript(): string {
  const R = `${DATA}/${RESTORE_DIR}`;
  return `if [ -d ${R} ]; then
  echo "firecampd: moving the backup's snapshot into its tables" >&2
  for snap in ${R}/data/*/*/snapshots/*; do
    [ -d "$snap" ] || continue
    rel=\${snap#${R}/data/}
    table=${DATA}/data/\${rel%/snapshots/*}
    mkdir -p "$table"
    rm -f "$snap/manifest.json" "$snap/schema.cql"
    for f in "$snap"/* "$snap"/.[!.]*; do
      if [ -e "$f" ]; then mv "$f" "$table/"; fi
    done
  done
  # Last, so that a start that stopped midway finds them again.
  [ -f ${STATE}/rackdc.properties ] || cp ${R}/${INFO}/rackdc.properties ${STATE}/rackdc.properties
  cp ${R}/${INFO}/tokens ${STATE}/tokens.tmp && mv ${STATE}/tokens.tmp ${STATE}/tokens
  rm -rf ${R}
fi
`;
}

/** The lines the configuration gets for a member restored from a backup: the source member's tokens, no bootstrap (its data is here). */
export function restoredConfig(): string {
  return `if [ -f ${STATE}/tokens ]; then
  printf 'initial_token: %s\\nauto_bootstrap: false\\n' "$(cat ${STATE}/tokens)" >> "$conf/cassandra.yaml"
fi
`;
}

/** Clears the snapshots firecampd left on a member (best effort: a member that does not answer keeps them until the next backup). */
async function clearLeftovers(m: PlacedMember, ctx: TypeContext, keep?: string): Promise<void> {
  try {
    for (const tag of ourSnapshots(await nodetool(m, ctx, ['listsnapshots']))) {
      if (tag !== keep) await nodetool(m, ctx, ['clearsnapshot', '-t', tag]);
    }
  } catch (err) {
    ctx.log.warn({ member: m.spec.name, err: errorMessage(err) }, 'cassandra: could not clear an old backup snapshot');
  }
}

export const cassandraBackup: TypeBackup = {
  async parts(spec, members, ctx) {
    const ordered = [...members].sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec));
    await Promise.all(ordered.map((m) => clearLeftovers(m, ctx)));
    const tag = `${TAG_PREFIX}${Date.now()}`;
    const began = Date.now();
    // All at once: each flushes its memtables and links its sstables, so the copies are as close in time as a flush allows.
    const took = await Promise.allSettled(
      ordered.map(async (m) => {
        await nodetool(m, ctx, ['snapshot', '-t', tag], 600_000);
        return Date.now();
      }),
    );
    const failed = took.findIndex((t) => t.status === 'rejected');
    if (failed >= 0) {
      await Promise.all(ordered.map((m) => nodetool(m, ctx, ['clearsnapshot', '-t', tag]).catch(() => {})));
      throw new Error(`${ordered[failed].spec.name} could not snapshot: ${errorMessage((took[failed] as PromiseRejectedResult).reason)}`);
    }
    const done = took.map((t) => (t as PromiseFulfilledResult<number>).value);
    ctx.log.info(
      { service: spec.name, snapshot: tag, snapshotMs: Math.max(...done) - began, spreadMs: Math.max(...done) - Math.min(...done) },
      'cassandra: every member snapshotted',
    );
    return ordered.map((m) => ({ member: m.spec.name, name: 'data', cmd: ['sh', '-c', partScript(m, tag)] }));
  },

  restore(spec, index): MemberRestore | undefined {
    const part = spec.restore?.parts.find((p) => p.index === index && p.name === 'data');
    return part ? { parts: [{ index, name: 'data', path: RESTORE_DIR, unpack: 'tar' }], files: [] } : undefined;
  },

  /** Every member's sstables pass `nodetool verify` (their checksums), and the schema names the tables the backup had. */
  async check(spec, members, ctx) {
    for (const m of members) await nodetool(m, ctx, ['verify', '--force'], 1_800_000);
    const tables = await withCql(members, CASSANDRA_ADMIN, ctx.secrets.admin ?? '', async (c) => {
      const rows = (await c.execute('SELECT keyspace_name FROM system_schema.tables')).rows;
      return rows.map((r) => String(r.get('keyspace_name'))).filter((k) => !k.startsWith('system'));
    });
    return `${tables.length} tables in ${new Set(tables).size} keyspaces, the sstables of ${members.length} members verified`;
  },
};
