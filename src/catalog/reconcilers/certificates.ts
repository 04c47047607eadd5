// Certificates (ACTIVE): a member's certificate is made anew only as the
// member starts (the agent's certificate step), so a member whose certificate
// has entered the last third of its life, as its status says, is restarted:
// the whole service through the type's rolling restart, one member at a
// time in the type's order (replicas before the primary), as `service
// restart` would. The step renews earlier than the catalog restarts
// (member-cert.ts), so one restart renews every member made about the same
// time, and a node whose clock lags the leader's a little renews all the same.
import { certificateLifetimeMs, renewalDue } from '../../security/member-cert.ts';
import type { Reconciler } from './reconciler.ts';

export const certificates: Reconciler = {
  name: 'Certificates',
  during: ['ACTIVE'],
  async reconcile(s) {
    const now = Date.now();
    const due = s
      .members()
      .map((m) => m.value)
      .filter((m) => {
        const ends = s.status(m)?.certificateEnds;
        return m.tls && !m.stopped && ends !== undefined && renewalDue(new Date(ends), certificateLifetimeMs(m.tls), now);
      });
    if (due.length === 0) return false;
    await s.setStatus('RESTARTING', `renewing the certificates of ${due.map((m) => m.name).join(', ')}: one member at a time`, {
      generation: (s.svc.generation ?? 0) + 1,
    });
    return true;
  },
};
