// Container: the member's container runs, under a claim of this node checked
// once more right before the start (the lease may have lapsed meanwhile).
// Online, a stop gives the member its grace to shut down cleanly; offline
// (fenced), it is killed at once.
import { readClaim } from '../../catalog/records.ts';
import { containerName } from '../members.ts';
import type { MemberStep } from './step.ts';

export const container: MemberStep = {
  name: 'container',
  async start(node, run) {
    const { spec } = run;
    if (readClaim(node.db.store, spec.service, spec.name)?.value.node !== node.nodeId || Date.now() >= node.lease.fenceDeadline()) return false;
    run.container = await node.containers.run(spec, run.volumeDir, run.journalDir, node.hosts?.path);
    node.log.info({ member: `${spec.service}/${spec.name}`, epoch: spec.epoch, container: run.container.slice(0, 12) }, 'member started');
    return true;
  },
  async stop(node, { spec }, mode) {
    await node.containers.stop(containerName(spec), mode.online ? node.stopGraceSeconds : 0);
  },
};
