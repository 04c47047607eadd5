// Metrics: a member whose type scrapes it through an exporter (the upstream
// exporter of Redis, of PostgreSQL) gets it beside its container, once its
// container runs, and loses it before its container stops. A member whose
// service serves its own endpoint (ZooKeeper) needs nothing here.
import { exporterName } from '../members.ts';
import type { MemberStep } from './step.ts';

export const metrics: MemberStep = {
  name: 'metrics',
  async start(node, run) {
    if (!run.spec.metrics?.exporter) return true;
    await node.containers.runExporter(run.spec, run.volumeDir, run.journalDir);
    return true;
  },
  async stop(node, { spec }) {
    // Also without an exporter in this spec: an earlier spec of the member may have had one.
    await node.containers.remove(exporterName(spec));
  },
};
