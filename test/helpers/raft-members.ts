// In-process Raft members on real parts (SQLite storage, WebSocket transport
// on loopback) with a small in-memory state machine; for tests and bench:raft.
import { ApiServer } from '../../src/api/server.ts';
import { createLogger } from '../../src/log.ts';
import { RaftNode } from '../../src/raft/node.ts';
import { RaftStorage } from '../../src/raft/storage.ts';
import { Transport } from '../../src/raft/transport.ts';
import { createCa, generateKeyPair, issueNodeCert, type CaPem, type NodeTls } from '../../src/security/pki.ts';

export const log = createLogger({ level: 'warn', pretty: false });

/** The members' CA, made once per test process. */
export const testCa: CaPem = await createCa('raft-test');

export async function nodeTls(id: string, ca: CaPem = testCa): Promise<NodeTls> {
  const kp = generateKeyPair();
  return { caPem: testCa.certPem, certPem: await issueNodeCert(ca, { nodeId: id, publicKeyPem: kp.publicKeyPem, hosts: [] }), keyPem: kp.keyPem };
}

export interface Member {
  id: string;
  dir: string;
  api: ApiServer;
  port: number;
  transport: Transport;
  node: RaftNode;
  storage: RaftStorage;
  /** The state machine: the commands applied, in order. */
  applied: string[];
  restores: number;
}

const ports = new Map<string, number>();

export async function startMember(
  id: string,
  dir: string,
  bootstrap: string[] | null,
  port = 0,
  tuning: { tickMs?: number; snapshotEvery?: number; heartbeatTicks?: number; electionTicks?: number } = {},
): Promise<Member> {
  const api = new ApiServer({
    log,
    auth: { isMember: (peer) => ports.has(peer), checkToken: () => ({ ok: false, reason: 'members take no tokens' }) },
  });
  const addr = await api.listen('127.0.0.1', port);
  const tls = await nodeTls(id);
  api.enableTls(tls);
  ports.set(id, addr.port);
  const storage = RaftStorage.open(dir);
  if (bootstrap && storage.isEmpty()) storage.bootstrap({ voters: bootstrap, learners: [] });
  const m = { id, dir, api, port: addr.port, storage, applied: [] as string[], restores: 0 } as Member;
  m.transport = new Transport({
    selfId: id,
    tls,
    log,
    resolve: (peer) => (ports.has(peer) ? `127.0.0.1:${ports.get(peer)}` : undefined),
    onMessages: (msgs) => m.node.receive(msgs),
  });
  m.transport.attach(api);
  m.node = new RaftNode({
    id,
    storage,
    send: (msgs) => m.transport.send(msgs),
    log,
    // The state machine lives in memory here, so it starts empty and replays everything.
    applied: 0,
    apply: (entries) =>
      entries.map((e) => {
        if (e.type === 'normal' && e.data.length > 0) m.applied.push(Buffer.from(e.data).toString());
        return m.applied.length;
      }),
    restore: (s) => {
      m.restores++;
      m.applied = JSON.parse(Buffer.from(s.data).toString()) as string[];
    },
    takeSnapshot: () => Buffer.from(JSON.stringify(m.applied)),
    tickMs: tuning.tickMs ?? 100,
    snapshotEvery: tuning.snapshotEvery ?? 10_000,
    heartbeatTicks: tuning.heartbeatTicks,
    electionTicks: tuning.electionTicks,
  });
  m.node.start();
  return m;
}

export async function stopMember(m: Member): Promise<void> {
  m.node.stop();
  m.transport.close();
  await m.api.close();
  m.storage.close();
}

/** Wait for `cond`; on timeout the error names `what` and, given `seen`, what it last showed. */
export async function until(cond: () => boolean, ms: number, what: string, seen?: () => unknown): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${seen ? `; last seen: ${JSON.stringify(seen())}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
