// Prometheus metrics of one node, served at /metrics.
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app: 'firecampd' });
  collectDefaultMetrics({ register: registry, prefix: 'firecampd_' });
  return registry;
}
