// The vocabulary of the Raft core: what it stores, what it sends, and what it
// hands to the code around it. Everything here is plain data, so the same
// values flow through the simulator, SQLite storage and the WebSocket wire.

export type NodeId = string;

export type EntryType = 'normal' | 'config';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** normal: the application's command (empty for a new leader's no-op); config: encodeConf(). */
  readonly data: Uint8Array;
}

/** Voters elect and form quorums; learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export type ConfChange =
  | { readonly type: 'addLearner'; readonly node: NodeId }
  | { readonly type: 'promote'; readonly node: NodeId }
  | { readonly type: 'remove'; readonly node: NodeId };

export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  /** The configuration in force at `index`. */
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The state machine image (for the controldb, a SQLite database file). */
  readonly data: Uint8Array;
}

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

export type Message =
  | (Envelope & {
      readonly type: 'append';
      readonly prevIndex: number;
      readonly prevTerm: number;
      readonly entries: readonly Entry[];
      readonly commit: number;
    })
  | (Envelope & {
      readonly type: 'appendResp';
      readonly reject: boolean;
      /** Accepted: the follower's log matches the leader's up to here. Rejected: the prevIndex that did not match. */
      readonly index: number;
      /** Rejected: the follower's best guess of where the logs may agree, and the term it has there. */
      readonly hintIndex: number;
      readonly hintTerm: number;
    })
  | (Envelope & { readonly type: 'heartbeat'; readonly commit: number; readonly readSeq: number })
  | (Envelope & { readonly type: 'heartbeatResp'; readonly readSeq: number })
  | (Envelope & {
      readonly type: 'vote';
      readonly preVote: boolean;
      readonly lastIndex: number;
      readonly lastTerm: number;
      /** Set when a leadership transfer started this election: voters may then ignore their leader lease. */
      readonly transfer: boolean;
    })
  | (Envelope & { readonly type: 'voteResp'; readonly preVote: boolean; readonly reject: boolean })
  | (Envelope & { readonly type: 'snapshot'; readonly snapshot: Snapshot })
  | (Envelope & { readonly type: 'timeoutNow' })
  | (Envelope & { readonly type: 'readIndex'; readonly ctx: string })
  | (Envelope & { readonly type: 'readIndexResp'; readonly ctx: string; readonly index: number });

export type MessageType = Message['type'];

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly ctx: string;
  readonly index: number;
}

export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/**
 * What the core asks of its host after a step. The host must, in this order:
 * persist `snapshot`, then `entries` (first dropping any stored entry at or
 * after entries[0].index) and `hardState`, with fsync; then send `messages`;
 * then apply `committed` and serve `readStates`; then call advance().
 * When `sendBeforePersist` is set the messages may go out before the persist
 * (a leader's appends: thesis §10.2.1 — the leader writes its own log in
 * parallel with its followers and counts itself only once it is durable).
 */
export interface Ready {
  readonly sendBeforePersist: boolean;
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly snapshot?: Snapshot;
  readonly entries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly committed: readonly Entry[];
  readonly readStates: readonly ReadState[];
}

/** What a node recovers from its storage when it starts. */
export interface DurableState {
  readonly hardState: HardState;
  readonly snapshot: Snapshot | null;
  /** Entries after the snapshot, in order. */
  readonly entries: readonly Entry[];
  /** The state machine's applied index, if it keeps one durably; the core re-delivers entries after it. */
  readonly applied?: number;
}

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface PeerStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly recentActive: boolean;
  readonly learner: boolean;
}

export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly conf: ConfState;
  /** Only on the leader. */
  readonly peers?: Readonly<Record<NodeId, PeerStatus>>;
}

export class RaftError extends Error {
  constructor(
    readonly code: 'not_leader' | 'transferring' | 'conf_change_pending' | 'bad_conf_change' | 'stopped',
    message: string,
    readonly leader: NodeId | null = null,
  ) {
    super(message);
    this.name = 'RaftError';
  }
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

export function encodeConf(conf: ConfState): Uint8Array {
  return textEncoder.encode(JSON.stringify({ voters: [...conf.voters], learners: [...conf.learners] }));
}

export function decodeConf(data: Uint8Array): ConfState {
  const v = JSON.parse(textDecoder.decode(data)) as ConfState;
  return { voters: v.voters, learners: v.learners };
}
