// ZooKeeper: an ensemble of 1, 3, 5 or 7 voting members.
//
// Member N-1 is server.N (its myid). The ensemble's membership is
// ZooKeeper's own once it runs: every member starts from the dynamic config
// firecampd wrote, and keeps the one ZooKeeper rewrites after each reconfig,
// so a restart never undoes one. Scaling is dynamic reconfiguration, done by
// the catalog with zkCli as the ZooKeeper superuser (a generated password):
// new members start as non-voting followers of the running ensemble and are
// added one at a time once they have synced; leaving members are removed
// from the voters before their containers go. Each change is one reconfig,
// which ZooKeeper commits only with a quorum of the old and of the new
// voters, so the ensemble never loses quorum on the way.
//
// Servers name each other by the members' DNS names, which follow a member
// to another node; the JVM looks them up again after a few seconds.
//
// A rollout restarts the followers one at a time, then the leader, each
// back in the ensemble (following a leader, or leading) before the next.
import net from 'node:net';
import { memberIndex, type MemberSpec } from '../../../agent/members.ts';
import { UserError, errorMessage } from '../../../errors.ts';
import { execOk } from '../../member-exec.ts';
import type { MemberContext, MemberRole, PlacedMember, RolloutStep, ServiceSpec, ServiceSpecInput, ServiceType, TypeContext } from '../../types.ts';
import { memberResources, wholeNumber } from '../../types.ts';

export const ZK_CLIENT_PORT = 2181;
const QUORUM_PORT = 2888;
const ELECTION_PORT = 3888;
/** Where ZooKeeper serves its own Prometheus metrics (its metrics provider's usual port), on the member's address. */
export const ZK_METRICS_PORT = 7000;
/** The upstream image's zookeeper user. */
const ZK_USER = '1000:1000';
const DATA = '/data';
const JOURNAL = '/datalog';
const DEFAULT_HEAP_MIB = 512;
const ENSEMBLE_SIZES = [1, 3, 5, 7];

const myid = (m: { name: string }) => memberIndex(m) + 1;
const dnsName = (spec: ServiceSpec, index: number, domain: string) => `${spec.name}-${index}.${spec.name}.${domain}`;
/**
 * A member's line in the dynamic config. With a static IP the member has an
 * address of its own on a node it may share with other members (host
 * networking): it listens on that address only, for clients (given here)
 * and for its peers (the address its name resolves to). Without one it
 * listens on every address of its node.
 */
const serverLine = (id: number, host: string, ip: string | undefined) =>
  `server.${id}=${host}:${QUORUM_PORT}:${ELECTION_PORT}:participant;${ip ? `${ip}:` : ''}${ZK_CLIENT_PORT}`;

/** Send a four-letter word to a member's client port; its whole answer. */
export function fourLetter(host: string, word: 'ruok' | 'srvr' | 'mntr' | 'conf', timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host, port: ZK_CLIENT_PORT });
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`${host}:${ZK_CLIENT_PORT} did not answer ${word} in ${timeoutMs} ms`)));
    sock.on('connect', () => sock.end(word));
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/** The member's mode (leader, follower, observer, standalone), or undefined while it is not in a quorum. */
async function modeOf(host: string): Promise<string | undefined> {
  return /^Mode: (\S+)/m.exec(await fourLetter(host, 'srvr'))?.[1];
}

const modes = async (members: PlacedMember[]) =>
  new Map(await Promise.all(members.map(async (m) => [m.spec.name, await modeOf(m.host).catch(() => undefined)] as const)));

/** Where a member's clients reach it, from inside it: its own name (with a static IP it listens on that address only). */
const clientAddress = (m: PlacedMember) => `${m.spec.dnsName ?? '127.0.0.1'}:${ZK_CLIENT_PORT}`;

/** The ensemble's voters as ZooKeeper has them now (/zookeeper/config), by myid. */
async function voters(member: PlacedMember, ctx: TypeContext): Promise<Set<number>> {
  const out = await execOk(ctx.exec, member.spec, ['zkCli.sh', '-server', clientAddress(member), 'config'], { timeoutMs: 30_000 });
  const ids = [...out.matchAll(/^server\.(\d+)=[^\n]*:participant/gm)].map((m) => Number(m[1]));
  if (ids.length === 0) throw new Error(`no voters in the config ${member.spec.name} gave: ${out.trim().split('\n').slice(-3).join(' / ')}`);
  return new Set(ids);
}

/** One reconfig, as the superuser, through zkCli in `member`. */
async function reconfig(member: PlacedMember, ctx: TypeContext, args: string[]): Promise<string> {
  // zkCli takes one command per line on stdin; the password comes from the member's own secret file, never from a command line here.
  const script = `printf 'addauth digest super:%s\\nreconfig %s\\nquit\\n' "$(cat ${DATA}/.super-password)" "$1" | zkCli.sh -server ${clientAddress(member)}`;
  return execOk(ctx.exec, member.spec, ['sh', '-c', script, 'reconfig', args.join(' ')], { timeoutMs: 60_000 });
}

/** A member that answers as part of a quorum, to run zkCli in; the leader if it answers. */
async function serving(members: PlacedMember[]): Promise<PlacedMember | undefined> {
  const m = await modes(members);
  return members.find((x) => m.get(x.spec.name) === 'leader') ?? members.find((x) => m.get(x.spec.name) !== undefined);
}

/** ZooKeeper's own Prometheus metrics provider (in the upstream distribution's lib/), on the member's address only. */
const metricsConf = (ip: string | undefined) =>
  [
    'metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider',
    `metricsProvider.httpHost=${ip ?? '0.0.0.0'}`,
    `metricsProvider.httpPort=${ZK_METRICS_PORT}`,
    'metricsProvider.exportJvmInfo=true',
  ].join('\n');

export const zookeeper: ServiceType = {
  name: 'zookeeper',
  title: 'ZooKeeper',
  image: 'zookeeper:3.9',
  defaults: { replicas: 3, volumeSizeMiB: 1024 },
  jvm: true,
  journal: 'the transaction log (dataLogDir)',
  secrets: ['super'],

  /**
   * A backup is the leader's newest snapshot and every transaction log beside it (autopurge keeps them few), as
   * ZooKeeper's own data directory holds them: the snapshot is fuzzy, and replaying the logs over it, as ZooKeeper
   * does at every start, makes it whole up to the last transaction logged. Every member of a restored ensemble starts
   * from that same state, so they elect a leader with nothing to sync; the ensemble's voters are the new service's.
   */
  backup: {
    parts: async (spec, members) => {
      const leader = await serving(members);
      if (!leader) throw new Error(`no member of ${spec.name} answers as part of a quorum`);
      const logs = spec.journalVolumeSizeMiB !== undefined ? `${JOURNAL}/zk` : `${DATA}/zk`;
      // Copied first, then archived: the logs grow while they are read (GNU tar fails on a file that changes), and the
      // snapshot and the logs may be on two volumes. The snapshot before the logs: they then hold all that follows it.
      const script = [
        'set -e',
        `S=${DATA}/.firecampd-backup-zk`,
        'rm -rf "$S"; mkdir -p "$S/version-2"',
        `trap 'rm -rf "$S"' EXIT`,
        `snap=$(ls -t ${DATA}/zk/version-2/snapshot.* 2>/dev/null | head -1)`,
        'if [ -n "$snap" ]; then cp "$snap" "$S/version-2/"; fi',
        `for f in ${logs}/version-2/log.*; do if [ -e "$f" ]; then cp "$f" "$S/version-2/"; fi; done`,
        `[ -n "$(ls "$S/version-2")" ] || { echo "no snapshot or transaction log in ${DATA}/zk" >&2; exit 1; }`,
        'tar -cf - -C "$S" version-2',
      ].join('\n');
      return [{ member: leader.spec.name, name: 'data', cmd: ['sh', '-c', script] }];
    },
    restore: (spec) => {
      const part = spec.restore?.parts.find((p) => p.name === 'data');
      return part ? { parts: [{ index: part.index, name: 'data', path: 'zk', unpack: 'tar' }], files: [] } : undefined;
    },
    check: async (spec, members) => {
      const leader = await serving(members);
      if (!leader) throw new Error(`no member of ${spec.name} answers as part of a quorum`);
      const count = /^zk_znode_count\s+(\d+)/m.exec(await fourLetter(leader.host, 'mntr'))?.[1];
      if (count === undefined) throw new Error(`${leader.spec.name} gave no zk_znode_count in mntr`);
      return `${count} znodes`;
    },
  },
  settings: {
    tickTime: { describe: 'the base time unit in ms (heartbeats; sessions last 2 to 20 ticks)', default: '2000', check: (v) => wholeNumber(v, 100, 60_000) },
    initLimit: { describe: 'ticks a follower may take to connect and sync with the leader', default: '10', check: (v) => wholeNumber(v, 1, 1000) },
    // Also how long a follower waits on a silent leader: a dead machine answers nothing, so this bounds the failover.
    syncLimit: { describe: 'ticks a follower may fall behind the leader before it is dropped', default: '2', check: (v) => wholeNumber(v, 1, 1000) },
    maxClientCnxns: {
      describe: 'connections one client address may hold to one member (0: no limit)',
      default: '60',
      check: (v) => wholeNumber(v, 0, 100_000),
    },
    'autopurge.snapRetainCount': { describe: 'snapshots (and their logs) kept on the volume', default: '3', check: (v) => wholeNumber(v, 3, 1000) },
  },

  describeSecret: () => ({ user: 'super', describe: 'the ZooKeeper superuser (digest authentication: reconfig, and every ACL)' }),

  normalize(spec: ServiceSpecInput): ServiceSpec {
    const replicas = spec.replicas ?? zookeeper.defaults.replicas;
    if (!ENSEMBLE_SIZES.includes(replicas)) {
      throw new UserError(`a ZooKeeper ensemble has 1, 3, 5 or 7 members (an even count tolerates no more failures than one less): --replicas ${replicas}`);
    }
    return { ...spec, replicas };
  },

  needsStaticIps: () => undefined,

  cannotScale(_spec, replicas) {
    return ENSEMBLE_SIZES.includes(replicas) ? undefined : 'a ZooKeeper ensemble has 1, 3, 5 or 7 members';
  },

  group: () => 0,

  members(spec: ServiceSpec, ctx: MemberContext): Omit<MemberSpec, 'node' | 'epoch'>[] {
    const journal = spec.journalVolumeSizeMiB !== undefined;
    const heap = spec.heapMiB ?? DEFAULT_HEAP_MIB;
    const setting = (k: string) => spec.settings?.[k] ?? zookeeper.settings[k].default!;
    const conf = [
      '# Written by firecampd; change settings with "firecampd service config". The voters are in the dynamic config, which ZooKeeper keeps.',
      ...Object.keys(zookeeper.settings).map((k) => `${k}=${setting(k)}`),
      `dataDir=${DATA}/zk`,
      `dataLogDir=${journal ? `${JOURNAL}/zk` : `${DATA}/zk`}`,
      'autopurge.purgeInterval=1',
      // Transaction logs grow in 4 MiB steps, not 64: a log is sparse only until it is copied (a backup, a restore onto
      // the journal volume), and a small journal volume must hold a whole one.
      'preAllocSize=4096',
      '4lw.commands.whitelist=ruok,srvr,mntr,conf,stat',
      'admin.enableServer=false',
      // A member alone is still an ensemble of one, so that it can grow by reconfig.
      'standaloneEnabled=false',
      'reconfigEnabled=true',
      // Without static IPs a member is reached at its node's address, whichever node that is: listen on all of them.
      `quorumListenOnAllIPs=${ctx.ips.some((ip) => ip !== undefined) ? 'false' : 'true'}`,
      ...(spec.config ? [spec.config] : []),
    ].join('\n');
    // The voters a member first starts with: every member of the service as it is now. A new member thus
    // names the running ensemble and itself, and joins it as a follower until the catalog's reconfig adds it.
    const dynamic = Array.from({ length: spec.replicas }, (_, i) => serverLine(i + 1, dnsName(spec, i, ctx.domain), ctx.ips[i])).join('\n');
    return Array.from({ length: spec.replicas }, (_, i) => {
      const name = `${spec.name}-${i}`;
      const ip = ctx.ips[i];
      return {
        service: spec.name,
        name,
        image: spec.image ?? zookeeper.image,
        command: ['sh', `${DATA}/firecampd/start.sh`],
        user: ZK_USER,
        env: {
          ZK_SERVER_HEAP: String(heap),
          // Names are looked up again after 5 s, not cached for the JVM's life: a member that moved has a new address.
          // An election gives up on a peer that does not answer after 2 s, not 5: a dead one answers nothing.
          SERVER_JVMFLAGS: `-Xms${heap}m -Dsun.net.inetaddr.ttl=5 -Dsun.net.inetaddr.negative.ttl=1 -Dzookeeper.cnxTimeout=2000`,
        },
        volume: { id: name, sizeMiB: spec.volumeSizeMiB ?? zookeeper.defaults.volumeSizeMiB, mountPath: DATA },
        ...(journal ? { journal: { id: `${name}-journal`, sizeMiB: spec.journalVolumeSizeMiB!, mountPath: JOURNAL } } : {}),
        dnsName: dnsName(spec, i, ctx.domain),
        ...(ip ? { ip } : {}),
        port: ZK_CLIENT_PORT,
        ports: [ZK_CLIENT_PORT, QUORUM_PORT, ELECTION_PORT, ZK_METRICS_PORT],
        // Its own endpoint: no exporter beside it.
        metrics: { port: ZK_METRICS_PORT },
        configFiles: [
          { path: 'firecampd/zoo.cfg', content: `${conf}\n${metricsConf(ip)}\n` },
          { path: 'firecampd/zoo.cfg.dynamic', content: dynamic + '\n' },
          { path: 'firecampd/start.sh', content: startScript(i + 1, dnsName(spec, i, ctx.domain), journal), mode: 0o755 },
        ],
        secretFiles: [{ path: '.super-password', template: '{{super}}' }],
        ...memberResources(spec),
      };
    });
  },

  /** Every member in the quorum, and one leader among them. */
  async initialize(_spec, members) {
    const m = await modes(members);
    const out = members.filter((x) => m.get(x.spec.name) === undefined).map((x) => x.spec.name);
    if (out.length > 0) return `waiting for ${out.join(', ')} to join the ensemble`;
    if (![...m.values()].includes('leader')) return 'waiting for the ensemble to elect a leader';
    return undefined;
  },

  /** After a scale out: each member that is not a voter yet is added, one at a time, once it follows the leader. */
  async join(spec, members, ctx) {
    const waiting = await zookeeper.initialize(spec, members, ctx);
    if (waiting) return waiting;
    const at = (await serving(members))!;
    const have = await voters(at, ctx);
    const next = members.filter((m) => !have.has(myid(m.spec))).sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))[0];
    if (!next) return undefined;
    const line = serverLine(myid(next.spec), next.spec.dnsName!, next.spec.ip);
    ctx.log.info({ service: spec.name, member: next.spec.name }, 'zookeeper: adding a voter');
    await reconfig(at, ctx, ['-add', line]);
    return `adding ${next.spec.name} to the voters`;
  },

  /** Before a scale in: the leaving members stop being voters, in one reconfig the staying quorum commits. */
  async leave(spec, members, leaving, ctx) {
    const staying = members.filter((m) => !leaving.includes(m));
    const at = await serving(staying);
    if (!at) return 'waiting for a member that stays to answer in the ensemble';
    const have = await voters(at, ctx);
    const ids = leaving.map((m) => myid(m.spec)).filter((id) => have.has(id));
    if (ids.length === 0) return undefined;
    ctx.log.info({ service: spec.name, members: leaving.map((m) => m.spec.name) }, 'zookeeper: removing voters');
    await reconfig(at, ctx, ['-remove', ids.join(',')]);
    return `removing ${leaving.map((m) => m.spec.name).join(', ')} from the voters`;
  },

  async notReady(_spec, m) {
    try {
      if ((await fourLetter(m.host, 'ruok')) !== 'imok') return 'does not answer ruok';
      return (await modeOf(m.host)) ? undefined : 'not in a quorum';
    } catch (err) {
      return errorMessage(err);
    }
  },

  async roles(_spec, members) {
    const m = await modes(members);
    return Object.fromEntries(members.map((x) => [x.spec.name, { role: m.get(x.spec.name) ?? 'not serving' } satisfies MemberRole]));
  },

  /** Followers first, lowest index first; the leader last, so that the ensemble elects a new leader once, not at every step. */
  async rolloutStep(_spec, _members, pending): Promise<RolloutStep> {
    const m = await modes(pending);
    const next =
      pending.filter((x) => m.get(x.spec.name) !== 'leader').sort((a, b) => memberIndex(a.spec) - memberIndex(b.spec))[0] ??
      pending.find((x) => m.get(x.spec.name) === 'leader')!;
    return { restart: next.spec.name };
  },
};

/**
 * The member's start script (POSIX sh, as the image's zookeeper user). The
 * dynamic config firecampd wrote is used only until ZooKeeper has one of its
 * own (after a reconfig it writes a new file and names it in its zoo.cfg):
 * the settings are written anew at each start, the voters never.
 */
function startScript(id: number, me: string, journal: boolean): string {
  return `#!/bin/sh
# Written by firecampd: starts ZooKeeper as server.${id}.
set -eu
# Its own name must resolve first: ZooKeeper binds its quorum ports to that address.
until awk -v n="${me}" '$2 == n { found = 1 } END { exit !found }' /etc/hosts; do echo "firecampd: waiting for the name ${me}" >&2; sleep 1; done
ZK=${DATA}/zk
mkdir -p "$ZK"${journal ? ` ${JOURNAL}/zk` : ''}
echo ${id} > "$ZK/myid"
dynamic=
if [ -f "$ZK/zoo.cfg" ]; then dynamic=$(sed -n 's/^dynamicConfigFile=//p' "$ZK/zoo.cfg"); fi
if [ -z "$dynamic" ] || [ ! -f "$dynamic" ]; then
  cp ${DATA}/firecampd/zoo.cfg.dynamic "$ZK/zoo.cfg.dynamic"
  dynamic="$ZK/zoo.cfg.dynamic"
fi
${
  journal
    ? `if ls "$ZK"/version-2/log.* >/dev/null 2>&1; then
  # Restored from a backup, whose logs come in the data directory: onto the journal volume, where ZooKeeper reads them.
  mkdir -p ${JOURNAL}/zk/version-2
  mv "$ZK"/version-2/log.* ${JOURNAL}/zk/version-2/
fi
`
    : ''
}{ cat ${DATA}/firecampd/zoo.cfg; echo "dynamicConfigFile=$dynamic"; } > "$ZK/zoo.cfg.tmp"
mv "$ZK/zoo.cfg.tmp" "$ZK/zoo.cfg"
# The superuser's digest, made by ZooKeeper's own provider from the generated password.
lib="$(dirname "$(command -v zkServer.sh)")/../lib"
digest=$(java -cp "$lib/*" org.apache.zookeeper.server.auth.DigestAuthenticationProvider "super:$(cat ${DATA}/.super-password)" 2>/dev/null | sed -n 's/^.*->//p')
[ -n "$digest" ] || { echo "firecampd: could not make the superuser's digest" >&2; exit 1; }
export SERVER_JVMFLAGS="-Dzookeeper.DigestAuthenticationProvider.superDigest=$digest \${SERVER_JVMFLAGS:-}"
exec zkServer.sh start-foreground "$ZK/zoo.cfg"
`;
}
