// The controldb's records of services, checked on the way in against the
// spec schema the registry's types make (spec.ts): apart from records.ts,
// whose readers the types' own modules use, as this file loads the registry.
import { z } from 'zod';
import { all, parse, type RecordStore, type Stored } from './records.ts';
import { serviceSpecSchema } from './spec.ts';
import { SERVICES_PREFIX, serviceKey, type Service, type ServiceSpec } from './types.ts';

const conditionSchema = z
  .object({
    type: z.string(),
    status: z.enum(['True', 'False', 'Unknown']),
    reason: z.string(),
    message: z.string(),
    lastTransitionTime: z.string(),
    observedGeneration: z.number().int().nonnegative(),
  })
  .strict();

const serviceSchema = z
  .object({
    spec: z.lazy(() => serviceSpecSchema()),
    status: z.enum(['CREATING', 'INITIALIZING', 'ACTIVE', 'SCALING', 'UPGRADING', 'RESTARTING', 'STOPPING', 'STOPPED', 'DELETING', 'FAILED']),
    message: z.string(),
    initialized: z.boolean().optional(),
    rebalance: z.boolean().optional(),
    generation: z.number().int().nonnegative().optional(),
    state: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).optional()).optional(),
    conditions: z.array(conditionSchema).optional(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .strict();

export const readService = (store: RecordStore, name: string): Stored<Service> | undefined => {
  const kv = store.get(serviceKey(name));
  return kv ? parse(serviceSchema as z.ZodType<Service>, kv) : undefined;
};
export const readServices = (store: RecordStore): Stored<Service>[] => all(store, SERVICES_PREFIX).map((kv) => parse(serviceSchema as z.ZodType<Service>, kv));

/** The specs of the services `spec` needs, by type, as they are now. */
export function neededSpecs(store: RecordStore, spec: ServiceSpec): Record<string, ServiceSpec> {
  const out: Record<string, ServiceSpec> = {};
  for (const [type, name] of Object.entries(spec.needs ?? {})) {
    const svc = readService(store, name);
    if (svc) out[type] = svc.value.spec;
  }
  return out;
}
