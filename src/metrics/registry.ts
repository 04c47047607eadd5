// Prometheus metrics of one node, served at /metrics.
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app: 'firecampd' });
  collectDefaultMetrics({ register: registry, prefix: 'firecampd_' });
  return registry;
}

/** A value read from its source at each scrape. */
export function gaugeFrom(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}
