// What a leader knows about one follower's log, and how fast it may send to it.
import type { ProgressState } from './types.ts';

export class Progress {
  /** Highest index known to match the leader's log. */
  match = 0;
  /** Next index to send. */
  next: number;
  state: ProgressState = 'probe';
  /** Probe: one append is out and unanswered; wait for its answer or the next heartbeat. */
  probeSent = false;
  /** Replicate: last index of each append in flight, oldest first (pipelining window). */
  inflight: number[] = [];
  /** Snapshot: index of the snapshot sent, and ticks left before sending again. */
  pendingSnapshot = 0;
  snapshotTicks = 0;
  /** Heard from since the last check-quorum round. */
  recentActive = true;

  constructor(
    next: number,
    readonly learner: boolean,
  ) {
    this.next = next;
  }

  becomeProbe(): void {
    // After a snapshot the follower has at least its index; otherwise resume right after what matched.
    this.next = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.state = 'probe';
    this.probeSent = false;
    this.inflight = [];
    this.pendingSnapshot = 0;
  }

  becomeReplicate(): void {
    this.state = 'replicate';
    this.next = this.match + 1;
    this.inflight = [];
    this.probeSent = false;
  }

  becomeSnapshot(index: number, ticks: number): void {
    this.state = 'snapshot';
    this.pendingSnapshot = index;
    this.snapshotTicks = ticks;
    this.inflight = [];
  }

  /** Record an acknowledgement up to `index`; false if it told us nothing new. */
  ack(index: number): boolean {
    this.probeSent = false;
    while (this.inflight.length > 0 && this.inflight[0] <= index) this.inflight.shift();
    if (index <= this.match) return false;
    this.match = index;
    this.next = Math.max(this.next, index + 1);
    return true;
  }

  canSend(maxInflight: number): boolean {
    switch (this.state) {
      case 'probe':
        return !this.probeSent;
      case 'replicate':
        return this.inflight.length < maxInflight;
      case 'snapshot':
        return false;
    }
  }
}
