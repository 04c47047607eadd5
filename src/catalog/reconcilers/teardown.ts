// Teardown (STOPPING and DELETING): members are marked stopped, or removed
// with their DNS names; STOPPED, or the record gone with its roles and
// aliases, once no node holds a claim of any member (the agents release
// theirs once the containers are gone). The secrets stay, as the volumes
// do: a service created again under this name finds data made with them.
import { claimsLeft } from '../records.ts';
import { ROLES_PREFIX, serviceKey } from '../types.ts';
import { aliasKeys } from './aliases.ts';
import { memberDeletes } from './placement.ts';
import type { Reconciler } from './reconciler.ts';

export const teardown: Reconciler = {
  name: 'Teardown',
  during: ['STOPPING', 'DELETING'],
  async reconcile(s) {
    const have = s.members();
    if (s.svc.status === 'STOPPING') {
      const running = have.filter((m) => !m.value.stopped);
      if (running.length > 0) {
        for (const m of running) await s.putMember(m, { ...m.value, stopped: true });
        return true;
      }
      if (claimsLeft(s.env.db.store, s.name)) return s.setStatus('STOPPING', 'waiting for the members to stop').then(() => true);
      return s.setStatus('STOPPED', 'every member stopped; volumes and addresses kept').then(() => true);
    }
    if (have.length > 0) {
      await s.env.db.txn({ compare: [], success: memberDeletes(have.map((m) => m.value)), failure: [] });
      return true;
    }
    if (claimsLeft(s.env.db.store, s.name)) return s.setStatus('DELETING', 'waiting for the members to stop').then(() => true);
    s.wrote = true;
    await s.env.db.txn({
      compare: [{ key: serviceKey(s.name), target: 'mod_revision', op: '=', value: s.rev }],
      success: [
        { delete: { key: serviceKey(s.name), prefix: false } },
        { delete: { key: ROLES_PREFIX + s.name, prefix: false } },
        ...aliasKeys(s).map((key) => ({ delete: { key, prefix: false } })),
      ],
      failure: [],
    });
    s.env.log.info({ service: s.name }, 'service deleted');
    return true;
  },
};
