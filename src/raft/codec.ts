// Raft messages on the wire: MessagePack (msgpackr), with a light check of
// what arrives so that garbage from the network never reaches the core.
import { Packr } from 'msgpackr';
import type { Message } from './types.ts';

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

const TYPES = new Set<Message['type']>([
  'append',
  'appendResp',
  'heartbeat',
  'heartbeatResp',
  'vote',
  'voteResp',
  'snapshot',
  'timeoutNow',
  'readIndex',
  'readIndexResp',
]);

export function encodeMessages(msgs: readonly Message[]): Uint8Array {
  return packr.pack(msgs);
}

/** Decode a frame of messages; undefined if it is not one. */
export function decodeMessages(frame: Uint8Array): Message[] | undefined {
  let value: unknown;
  try {
    value = packr.unpack(frame);
  } catch {
    return undefined;
  }
  // A frame carries at least one message (Transport.send sends none empty): an empty list is garbage that happened to parse.
  if (!Array.isArray(value) || value.length === 0) return undefined;
  for (const m of value) if (!isMessage(m)) return undefined;
  return value as Message[];
}

function isMessage(m: unknown): boolean {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (!TYPES.has(r.type as Message['type']) || typeof r.from !== 'string' || typeof r.to !== 'string') return false;
  if (!Number.isSafeInteger(r.term) || (r.term as number) < 0) return false;
  switch (r.type) {
    case 'append':
      return (
        Number.isSafeInteger(r.prevIndex) &&
        Number.isSafeInteger(r.prevTerm) &&
        Number.isSafeInteger(r.commit) &&
        Array.isArray(r.entries) &&
        (r.entries as unknown[]).every(isEntry)
      );
    case 'appendResp':
      return typeof r.reject === 'boolean' && Number.isSafeInteger(r.index) && Number.isSafeInteger(r.hintIndex) && Number.isSafeInteger(r.hintTerm);
    case 'heartbeat':
      return Number.isSafeInteger(r.commit) && Number.isSafeInteger(r.readSeq);
    case 'heartbeatResp':
      return Number.isSafeInteger(r.readSeq);
    case 'vote':
      return typeof r.preVote === 'boolean' && typeof r.transfer === 'boolean' && Number.isSafeInteger(r.lastIndex) && Number.isSafeInteger(r.lastTerm);
    case 'voteResp':
      return typeof r.preVote === 'boolean' && typeof r.reject === 'boolean';
    case 'snapshot': {
      const s = r.snapshot as { meta?: { index?: unknown; term?: unknown; conf?: { voters?: unknown; learners?: unknown } }; data?: unknown } | undefined;
      return (
        !!s?.meta &&
        Number.isSafeInteger(s.meta.index) &&
        Number.isSafeInteger(s.meta.term) &&
        Array.isArray(s.meta.conf?.voters) &&
        Array.isArray(s.meta.conf?.learners) &&
        s.data instanceof Uint8Array
      );
    }
    case 'readIndex':
      return typeof r.ctx === 'string';
    case 'readIndexResp':
      return typeof r.ctx === 'string' && Number.isSafeInteger(r.index);
    default:
      return true; // timeoutNow
  }
}

function isEntry(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const r = e as Record<string, unknown>;
  return Number.isSafeInteger(r.index) && Number.isSafeInteger(r.term) && (r.type === 'normal' || r.type === 'config') && r.data instanceof Uint8Array;
}
