// Cores with one deliberate bug each: the simulation must catch every one.
// They exist to prove that the checker can fail; nothing else uses them.
import { Raft } from '../src/raft/raft.ts';
import type { Message, ReadState, Ready } from '../src/raft/types.ts';
import type { RaftFactory } from './cluster.ts';

type VoteMsg = Extract<Message, { type: 'vote' }>;

/** Commits an entry of an older term by counting replicas (the Figure 8 bug, §5.4.2). */
class CommitsOldTerm extends Raft {
  protected override mayCommitAt(): boolean {
    return true;
  }
}

/** Grants a second vote in a term it already voted in. */
class VotesTwice extends Raft {
  protected override mayVoteFor(m: VoteMsg): boolean {
    return m.preVote || true;
  }
}

/** Grants its vote to a candidate whose log is behind its own. */
class VotesForShortLog extends Raft {
  protected override candidateLogOk(): boolean {
    return true;
  }
}

/** Proposes a membership change before committing an entry of its own term. */
class EarlyConfChange extends Raft {
  protected override confChangeRefusal(): string | null {
    return this.confIndex > this.log.committed ? 'a membership change is still in progress' : null;
  }
}

/** Lets several membership changes be in flight at once. */
class ConcurrentConfChanges extends Raft {
  protected override confChangeRefusal(): string | null {
    return null;
  }
}

/** Serves reads from its own commit index without asking a quorum (no ReadIndex). */
class StaleReads extends Raft {
  private local: ReadState[] = [];
  override readIndex(ctx: string): boolean {
    this.local.push({ ctx, index: this.log.committed });
    return true;
  }
  override hasReady(): boolean {
    return this.local.length > 0 || super.hasReady();
  }
  override ready(): Ready {
    const rd = super.ready();
    const readStates = [...rd.readStates, ...this.local];
    this.local = [];
    return { ...rd, readStates };
  }
}

export const plantedBugs: Record<string, RaftFactory> = {
  'commit-old-term': (o, d) => new CommitsOldTerm(o, d),
  'double-vote': (o, d) => new VotesTwice(o, d),
  'vote-short-log': (o, d) => new VotesForShortLog(o, d),
  'early-conf-change': (o, d) => new EarlyConfChange(o, d),
  'concurrent-conf-changes': (o, d) => new ConcurrentConfChanges(o, d),
  'stale-read': (o, d) => new StaleReads(o, d),
};
