// A service's status conditions, in the manner of Kubernetes' and
// CloudNativePG's: each concern's verdict as True, False or Unknown with a
// reason a script may match and a message for people. They are made anew from
// the record and what the pass found (level-triggered); a condition's time
// moves only when its status flips.
import type { Condition, Service, ServiceStatus } from './types.ts';

/** What a pass found, beyond the record itself. */
export interface Verdicts {
  /** The catalog cannot go on until the user changes something (the message says what); it tries again on every pass. */
  stalled?: { reason: string; message: string };
  /** A reconciler's step failed this pass; it is retried. */
  failed?: { reason: string; message: string };
  /** An ACTIVE service's members that do not serve now, and why. */
  notServing?: string;
}

/** The statuses an operation is under way in, as a reason: CREATING → Creating. */
const UNDER_WAY: Partial<Record<ServiceStatus, string>> = {
  CREATING: 'Creating',
  INITIALIZING: 'Initializing',
  SCALING: 'Scaling',
  UPGRADING: 'Upgrading',
  RESTARTING: 'Restarting',
  STOPPING: 'Stopping',
  DELETING: 'Deleting',
};

type Verdict = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

function verdicts(svc: Service, found: Verdicts): Verdict[] {
  const underWay = UNDER_WAY[svc.status];
  const notServing = svc.status === 'ACTIVE' ? found.notServing : undefined;
  const ready: Verdict =
    svc.status === 'ACTIVE'
      ? notServing
        ? { type: 'Ready', status: 'False', reason: 'MembersNotServing', message: notServing }
        : { type: 'Ready', status: 'True', reason: 'Serving', message: svc.message }
      : { type: 'Ready', status: 'False', reason: underWay ?? (svc.status === 'STOPPED' ? 'Stopped' : 'Failed'), message: svc.message };
  const progressing: Verdict = underWay
    ? { type: 'Progressing', status: 'True', reason: underWay, message: svc.message }
    : { type: 'Progressing', status: 'False', reason: 'Settled', message: '' };
  const degraded: Verdict = found.failed
    ? { type: 'Degraded', status: 'True', ...found.failed }
    : notServing
      ? { type: 'Degraded', status: 'True', reason: 'MembersNotServing', message: notServing }
      : { type: 'Degraded', status: 'False', reason: 'AsExpected', message: '' };
  const stalled: Verdict = found.stalled
    ? { type: 'Stalled', status: 'True', ...found.stalled }
    : { type: 'Stalled', status: 'False', reason: 'AsExpected', message: '' };
  return [ready, progressing, degraded, stalled];
}

/** The service's conditions for the record `svc` is about to be, given those it had. */
export function conditionsFor(svc: Service, before: Condition[] | undefined, found: Verdicts, now: string): Condition[] {
  return verdicts(svc, found).map((v) => {
    const prev = before?.find((c) => c.type === v.type);
    return { ...v, lastTransitionTime: prev && prev.status === v.status ? prev.lastTransitionTime : now, observedGeneration: svc.generation ?? 0 };
  });
}

/** Equal but for their times: a write that would change only a time is not made. */
export function sameConditions(a: Condition[] | undefined, b: Condition[]): boolean {
  if (!a || a.length !== b.length) return false;
  return a.every(
    (c, i) =>
      c.type === b[i].type &&
      c.status === b[i].status &&
      c.reason === b[i].reason &&
      c.message === b[i].message &&
      c.observedGeneration === b[i].observedGeneration,
  );
}
