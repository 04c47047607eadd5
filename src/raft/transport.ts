// Raft messages between nodes over WebSocket on the API port (/v1/raft).
// Each node dials one connection per peer for what it sends and accepts
// theirs for what it receives. Raft tolerates loss, so nothing here blocks
// the core: queues are bounded and drop their oldest frames when full.
import type http from 'node:http';
import type { PeerCertificate } from 'node:tls';
import { WebSocket } from 'ws';
import type { ApiServer, Caller } from '../api/server.ts';
import type { NodeTls } from '../security/pki.ts';
import type { Logger } from '../log.ts';
import { decodeMessages, encodeMessages } from './codec.ts';
import type { Message, NodeId } from './types.ts';

export const RAFT_PATH = '/v1/raft';
export const NODE_HEADER = 'x-firecampd-node';

export interface TransportOptions {
  selfId: NodeId;
  /** This node's certificate: peers accept only member nodes of the cluster CA. */
  tls: NodeTls;
  log: Logger;
  /** Where a peer listens ("host:port"), or undefined if not known yet. */
  resolve: (id: NodeId) => string | undefined;
  onMessages: (msgs: Message[]) => void;
  /** Frames queued per peer while it is unreachable. */
  maxQueue?: number;
}

class Peer {
  ws: WebSocket | null = null;
  queue: Uint8Array[] = [];
  backoffMs = 50;
  retryTimer: NodeJS.Timeout | null = null;
  dropped = 0;

  constructor(readonly id: NodeId) {}
}

export class Transport {
  private readonly peers = new Map<NodeId, Peer>();
  /** Accepted connections and the node each speaks for. */
  private readonly incoming = new Map<WebSocket, NodeId>();
  private closed = false;
  private readonly maxQueue: number;

  constructor(private readonly opts: TransportOptions) {
    this.maxQueue = opts.maxQueue ?? 256;
  }

  attach(api: ApiServer): void {
    api.upgrade(RAFT_PATH, (ws, req, caller) => this.accept(ws, req, caller));
  }

  /** Send a Ready's messages: one frame per peer. */
  send(msgs: readonly Message[]): void {
    if (this.closed || msgs.length === 0) return;
    const byPeer = new Map<NodeId, Message[]>();
    for (const m of msgs) {
      const list = byPeer.get(m.to);
      if (list) list.push(m);
      else byPeer.set(m.to, [m]);
    }
    for (const [to, list] of byPeer) this.enqueue(to, encodeMessages(list));
  }

  /** Frames dropped so far because a peer was unreachable or slow. */
  droppedFrames(): number {
    let n = 0;
    for (const p of this.peers.values()) n += p.dropped;
    return n;
  }

  private enqueue(to: NodeId, frame: Uint8Array): void {
    let peer = this.peers.get(to);
    if (!peer) {
      peer = new Peer(to);
      this.peers.set(to, peer);
    }
    if (peer.ws?.readyState === WebSocket.OPEN && peer.queue.length === 0) {
      if (peer.ws.bufferedAmount > 16 << 20) {
        peer.dropped++; // the peer cannot keep up; Raft will resend
        return;
      }
      peer.ws.send(frame);
      return;
    }
    peer.queue.push(frame);
    if (peer.queue.length > this.maxQueue) {
      peer.queue.shift();
      peer.dropped++;
    }
    if (!peer.ws && !peer.retryTimer) this.connect(peer);
  }

  private connect(peer: Peer): void {
    if (this.closed) return;
    const addr = this.opts.resolve(peer.id);
    if (!addr) {
      this.retry(peer);
      return;
    }
    const { tls } = this.opts;
    const ws = new WebSocket(`wss://${addr}${RAFT_PATH}`, {
      headers: { [NODE_HEADER]: this.opts.selfId },
      ca: tls.caPem,
      cert: tls.certPem,
      key: tls.keyPem,
      // The peer must be the node we meant to reach, not just any node of the cluster.
      // (ws hands this to tls.connect, which wants an Error or undefined; its typings say boolean.)
      checkServerIdentity: ((_host: string, cert: PeerCertificate) =>
        cert.subject?.CN === peer.id ? undefined : new Error(`expected node ${peer.id}, reached ${cert.subject?.CN}`)) as never,
      handshakeTimeout: 3000,
      maxPayload: 64 << 20,
    });
    peer.ws = ws;
    ws.on('open', () => {
      peer.backoffMs = 50;
      for (const f of peer.queue.splice(0)) ws.send(f);
    });
    ws.on('error', () => {
      /* reported through close */
    });
    ws.on('close', () => {
      if (peer.ws === ws) peer.ws = null;
      this.retry(peer);
    });
    ws.on('message', () => {
      /* peers send on their own connections */
    });
  }

  private retry(peer: Peer): void {
    if (this.closed || peer.retryTimer) return;
    // Exponential back-off with jitter, capped, so a dead peer costs little.
    const delay = peer.backoffMs * (0.5 + Math.random());
    peer.backoffMs = Math.min(peer.backoffMs * 2, 2000);
    peer.retryTimer = setTimeout(() => {
      peer.retryTimer = null;
      if (peer.queue.length > 0) this.connect(peer);
    }, delay);
    peer.retryTimer.unref();
  }

  private accept(ws: WebSocket, req: http.IncomingMessage, caller: Caller): void {
    const from = req.headers[NODE_HEADER];
    // A connection speaks for the node its certificate names, and no other.
    if (caller.kind !== 'node' || from !== caller.id || this.closed) {
      ws.close(1008, 'the node id does not match the certificate');
      return;
    }
    this.incoming.set(ws, from);
    ws.on('close', () => this.incoming.delete(ws));
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return;
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const msgs = decodeMessages(buf);
      if (!msgs) {
        this.opts.log.warn({ from }, 'dropped an undecodable raft frame');
        return;
      }
      // A connection speaks only for the node it said it was, and only to us.
      const ok = msgs.filter((m) => m.from === from && m.to === this.opts.selfId);
      if (ok.length > 0) this.opts.onMessages(ok);
    });
  }

  /** Drop the connections of nodes that are no longer members (a removed node's certificate stops working). */
  dropNonMembers(isMember: (id: NodeId) => boolean): void {
    for (const [ws, id] of this.incoming) {
      if (!isMember(id)) ws.terminate();
    }
    for (const [id, p] of this.peers) {
      if (!isMember(id)) {
        if (p.retryTimer) clearTimeout(p.retryTimer);
        p.ws?.terminate();
        this.peers.delete(id);
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const p of this.peers.values()) {
      if (p.retryTimer) clearTimeout(p.retryTimer);
      p.ws?.terminate();
    }
    for (const ws of this.incoming.keys()) ws.terminate();
    this.peers.clear();
  }
}
