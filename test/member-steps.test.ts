// The order of a member's life (src/agent/steps/steps.ts): starts run
// forward and end where a step says "not now"; stops run in reverse; online,
// the first failure stops the stop and names its step; fenced (offline),
// every stop is tried. The steps themselves run for real in agent.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MEMBER_STEPS, startMember, stopMember } from '../src/agent/steps/steps.ts';
import type { MemberRun, MemberStep, NodeContext } from '../src/agent/steps/step.ts';
import { createLogger } from '../src/log.ts';

const node = { log: createLogger({ level: 'error' }) } as unknown as NodeContext;
const run: MemberRun = { spec: { service: 's', name: 's-0', node: 'n', epoch: 1, image: 'i' } };

function recorder(fail: { start?: string; stop?: string } = {}, wait?: string) {
  const did: string[] = [];
  const step = (name: string): MemberStep => ({
    name,
    start: () => {
      did.push(`start ${name}`);
      if (fail.start === name) return Promise.reject(new Error('no disk'));
      return Promise.resolve(wait !== name);
    },
    stop: () => {
      did.push(`stop ${name}`);
      return fail.stop === name ? Promise.reject(new Error('busy')) : Promise.resolve();
    },
  });
  return { did, steps: ['claim', 'volumes', 'name', 'container'].map(step) };
}

describe('member steps', () => {
  it('are claim, image, volumes, logs, restore, firewall, address, name, files, certificate, container, metrics, health, in that order', () => {
    assert.deepEqual(
      MEMBER_STEPS.map((s) => s.name),
      ['claim', 'image', 'volumes', 'logs', 'restore', 'firewall', 'address', 'name', 'files', 'certificate', 'container', 'metrics', 'health'],
    );
  });

  it('start forward, and end where a step says not now', async () => {
    const all = recorder();
    assert.equal(await startMember(node, run, all.steps), true);
    assert.deepEqual(all.did, ['start claim', 'start volumes', 'start name', 'start container']);
    const waiting = recorder({}, 'volumes');
    assert.equal(await startMember(node, run, waiting.steps), false);
    assert.deepEqual(waiting.did, ['start claim', 'start volumes']);
  });

  it('name the step that failed', async () => {
    const r = recorder({ start: 'name' });
    await assert.rejects(startMember(node, run, r.steps), /^Error: name step: no disk$/);
    assert.deepEqual(r.did, ['start claim', 'start volumes', 'start name']);
  });

  it('stop in reverse; online the first failure ends the stop, offline every step is tried', async () => {
    const online = recorder({ stop: 'name' });
    await assert.rejects(stopMember(node, run, { online: true, why: 'moved' }, online.steps), /name step: busy/);
    assert.deepEqual(online.did, ['stop container', 'stop name']);
    const fenced = recorder({ stop: 'name' });
    await stopMember(node, run, { online: false, why: 'fenced' }, fenced.steps);
    assert.deepEqual(fenced.did, ['stop container', 'stop name', 'stop volumes', 'stop claim']);
  });
});
