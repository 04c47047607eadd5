// Rollout (UPGRADING and RESTARTING): once every member runs and serves, the
// type picks the next member whose spec is of an older generation; it
// restarts on the same node at epoch + 1 with its spec made anew (image,
// config files) from the service's current spec and the type's state. A
// change of the type's state (a new primary) is written in the same
// transaction, with the aliases that follow it.
import { memberIndex, memberKey, type MemberSpec } from '../../agent/members.ts';
import { put } from '../records.ts';
import { serviceKey, type Service } from '../types.ts';
import { aliasPuts } from './aliases.ts';
import { recordEvent } from '../../events/events.ts';
import type { Reconciler } from './reconciler.ts';
import { upkeep } from './upkeep.ts';

export const rollout: Reconciler = {
  name: 'Rollout',
  during: ['UPGRADING', 'RESTARTING'],
  async reconcile(s) {
    const { svc, type } = s;
    const have = s.members();
    const generation = svc.generation ?? 0;
    const ctx = s.typeContext();
    const placed = s.placed(have);
    // Upkeep first, whoever is not ready yet: a standby that rejoins may wait for just that (its replication slot).
    await upkeep(
      s,
      placed.filter((m) => !m.spec.stopped),
      ctx,
    );
    // A member the type stopped on purpose (the primary, mid-switchover): the type alone says what comes next.
    const halted = placed.some((m) => m.spec.stopped);
    for (const m of halted ? [] : placed) {
      if (!s.running(m.spec)) return s.setStatus(svc.status, `waiting for ${m.spec.name} to run`).then(() => true);
      const why = await type.notReady(svc.spec, m, ctx);
      if (why) return s.setStatus(svc.status, `waiting for ${m.spec.name}: ${why}`).then(() => true);
    }
    const pending = placed.filter((m) => (m.spec.generation ?? 0) < generation);
    const image = svc.spec.image ?? type.image;
    if (pending.length === 0)
      return s.setStatus('ACTIVE', svc.status === 'UPGRADING' ? `every member runs ${image}` : 'every member restarted').then(() => true);
    const next = await type.rolloutStep(svc.spec, placed, pending, ctx);
    const state = next.state ? { ...ctx.state, ...next.state } : undefined;
    if ('wait' in next) return s.setStatus(svc.status, next.wait, state ? { state } : {}).then(() => true);
    const name = 'stop' in next ? next.stop : next.restart;
    const m = have.find((x) => x.value.name === name)!;
    let spec: MemberSpec;
    let message: string;
    if ('stop' in next) {
      spec = { ...m.value, stopped: true };
      message = `stopping ${name} to switch over`;
    } else {
      const fresh = s.memberSpecs(
        placed.map((p) => p.spec.ip),
        state,
      )[memberIndex(m.value)];
      // Where it runs, what fences it and its history of moves stay; the rest is made anew. A new epoch: the agent stops the old container and starts the new one.
      const { node, zone, moves, movedAt } = m.value;
      spec = { ...fresh, node, epoch: m.value.epoch + 1, generation, ...(zone ? { zone } : {}), ...(moves ? { moves } : {}), ...(movedAt ? { movedAt } : {}) };
      message = `restarting ${name}${svc.status === 'UPGRADING' ? ` on ${image}` : ''} (${pending.length - 1} more after it)`;
    }
    const nextSvc: Service = { ...svc, ...(state ? { state } : {}), message, updated_at: new Date().toISOString() };
    s.wrote = true;
    const r = await s.env.db.txn({
      compare: [
        { key: memberKey(m.value.service, name), target: 'mod_revision', op: '=', value: m.rev },
        { key: serviceKey(svc.spec.name), target: 'mod_revision', op: '=', value: s.rev },
      ],
      success: [
        put.member(spec),
        put.service(nextSvc),
        // A new primary's name moves in the same transaction: a member restarted by it already finds the name where the state says.
        ...(state && 'restart' in next ? aliasPuts(s, nextSvc, placed) : []),
      ],
      failure: [],
    });
    if (r.succeeded) {
      s.env.log.info({ member: name, image: spec.image, generation, stop: 'stop' in next }, 'rolling a member');
      void recordEvent(s.env.db, s.env.log, {
        kind: 'rolled',
        service: s.name,
        member: name,
        reason: 'stop' in next ? 'stopped for the new generation' : `restarted at generation ${generation} (${spec.image})`,
      });
    }
    return true;
  },
};
