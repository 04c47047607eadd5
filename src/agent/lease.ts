// The node's liveness lease: the leader forgets the node (and every claim
// attached to the lease) once it has heard no keepalive for a TTL. The lease
// can only expire at the leader a TTL after the last keepalive that the
// leader received, and that keepalive was sent after `lastSent`; so if this
// node stops its members by lastSent + TTL − fenceMarginMs(TTL), they are
// down before anyone else may start them.
import fs from 'node:fs';
import path from 'node:path';
import type { ControlDb } from '../controldb/controldb.ts';
import { UserError, errorMessage } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ALIVE_PREFIX } from './members.ts';
import { withTimeout } from '../timeout.ts';

/**
 * How long before the lease can expire at the leader this node stops its
 * members: an eighth of the TTL, at most a second. Killing a container takes
 * milliseconds (the watchdog signals its processes itself); the margin is for
 * a fence check that runs late on a busy node. After the expiry the member
 * still waits for the revoke, the catalog's grace and its new node's claim.
 */
export function fenceMarginMs(ttlSeconds: number): number {
  return Math.min(1000, (ttlSeconds * 1000) / 8);
}

/**
 * At most this long between keepalives (a twelfth of the TTL when that is
 * shorter): a node rides out a pause or a leader's death as long as the
 * fence allows, less this.
 */
export function renewEveryMs(ttlSeconds: number): number {
  return Math.min(500, (ttlSeconds * 1000) / 12);
}

export class NodeLease {
  private id = 0;
  /** When the last keepalive that the leader confirmed was sent. */
  private lastSent = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private granting = false;
  private lastWarned = 0;
  private readonly file: string;

  constructor(
    private readonly db: ControlDb,
    private readonly nodeId: string,
    readonly ttlSeconds: number,
    dataDir: string,
    private readonly log: Logger,
    /** Called whenever the lease changes (a new one replaces an expired one). */
    private readonly onNewLease: (id: number) => void,
  ) {
    this.file = path.join(dataDir, 'agent-lease');
  }

  get leaseId(): number {
    return this.id;
  }

  /** Until when this node may run members, as far as it can tell (epoch ms); 0 if not at all. */
  fenceDeadline(): number {
    return this.lastSent === 0 ? 0 : this.lastSent + this.ttlSeconds * 1000 - fenceMarginMs(this.ttlSeconds);
  }

  /**
   * Keep the lease from an earlier run if it is still alive, else make a new
   * one; returns once the leader has confirmed it (it waits out an election).
   */
  async start(): Promise<void> {
    const saved = Number(readOr(this.file, '0'));
    if (saved > 0) this.id = saved;
    for (let attempt = 0; this.lastSent === 0 && !this.stopped; attempt++) {
      await this.renew();
      if (this.lastSent === 0) await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
    }
    // How long a restart took to confirm the lease matters: a watchdog left by the last run fences at its deadline.
    this.log.info({ lease: this.id, since_process_start_ms: Math.round(process.uptime() * 1000) }, 'node lease confirmed');
    this.schedule();
  }

  /**
   * A keepalive every renewEveryMs(TTL), each on its own: one forwarded to a leader that just died hangs
   * until its timeout, and the next must not wait behind it, or this node
   * would pass its fence deadline while a new leader is already there to
   * answer (the survivors of a leader's death would all stop their members).
   */
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.renew();
      this.schedule();
    }, renewEveryMs(this.ttlSeconds));
  }

  private async renew(): Promise<void> {
    const sent = Date.now();
    try {
      if (this.id === 0) throw new UserError('no lease yet', 404, 'lease_not_found');
      await withTimeout(this.db.leaseKeepAlive(this.id), (this.ttlSeconds * 1000) / 4, 'the leader');
      // Attempts overlap: an older one that answered late does not move the time back.
      this.lastSent = Math.max(this.lastSent, sent);
    } catch (err) {
      if (!(err instanceof UserError && err.code === 'lease_not_found')) {
        // One warning a TTL: during an election every attempt fails.
        if (sent - this.lastWarned >= this.ttlSeconds * 1000) {
          this.lastWarned = sent;
          this.log.warn({ err: errorMessage(err) }, 'could not renew the node lease');
        }
        return;
      }
      // One new lease at a time: overlapping attempts that all found it gone must not take several.
      if (this.granting) return;
      this.granting = true;
      try {
        const { id } = await this.db.leaseGrant(this.ttlSeconds);
        await this.db.txn({ compare: [], success: [{ put: { key: ALIVE_PREFIX + this.nodeId, value: new Date().toISOString(), lease: id } }], failure: [] });
        fs.writeFileSync(this.file, String(id));
        if (this.id !== 0) this.log.warn({ old: this.id, lease: id }, 'the node lease had expired; took a new one');
        this.id = id;
        this.lastSent = sent;
        this.onNewLease(id);
      } catch (e) {
        this.log.warn({ err: errorMessage(e) }, 'could not take a node lease');
      } finally {
        this.granting = false;
      }
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}
