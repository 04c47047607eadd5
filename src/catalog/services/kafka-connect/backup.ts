// Kafka Connect's backups: its connectors' configs, as the workers' REST API
// gives them (the workers keep them in the Kafka topic <service>-configs).
// A restored service puts each one back through the same API once its
// workers run; the connectors then start from the offsets their source or
// sink keeps (source offsets live in <service>-offsets, not restored: a
// restored source connector starts as a new one).
import { z } from 'zod';
import type { PlacedMember, TypeBackup, TypeContext } from '../../types.ts';
import { connectRequest } from './kafka-connect.ts';

export const CONNECTORS_PART = 'connectors';

const connectorsSchema = z
  .object({ format: z.literal(1), connectors: z.array(z.object({ name: z.string(), config: z.record(z.string(), z.string()) }).strict()) })
  .strict();

/** A request to the first worker that answers; Connect's message on an error. */
async function ask(members: PlacedMember[], ctx: TypeContext, method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  let last = '';
  for (const m of members) {
    try {
      const r = await connectRequest(m.host, ctx.secrets.admin ?? '', method, path, { body, timeoutMs: 15_000 });
      if (r.status < 500 && r.status !== 409) return r;
      last = `${m.spec.name} answered ${r.status}: ${(r.body as { message?: string } | null)?.message ?? ''}`;
    } catch (err) {
      last = `${m.spec.name}: ${(err as Error).message}`;
    }
  }
  throw new Error(`no worker took ${method} ${path} (the group may be rebalancing): ${last}`);
}

export const connectBackup: TypeBackup = {
  async parts(_spec, members, ctx) {
    const r = await ask(members, ctx, 'GET', '/connectors?expand=info');
    if (r.status !== 200) throw new Error(`GET /connectors answered ${r.status}`);
    const infos = r.body as Record<string, { info: { config: Record<string, string> } }>;
    const connectors = Object.entries(infos)
      .map(([name, v]) => ({ name, config: v.info.config }))
      .sort((a, b) => a.name.localeCompare(b.name));
    return [{ member: members[0].spec.name, name: CONNECTORS_PART, content: Buffer.from(JSON.stringify({ format: 1, connectors }, null, 1)) }];
  },

  /** Nothing on the workers' volumes: the connectors come back through the REST API. */
  restore: () => undefined,

  async apply(spec, members, ctx, part) {
    const { connectors } = connectorsSchema.parse(JSON.parse((await part(CONNECTORS_PART)).toString('utf8')));
    for (const c of connectors) {
      // PUT of a config is idempotent: made, or left as it is.
      const r = await ask(members, ctx, 'PUT', `/connectors/${encodeURIComponent(c.name)}/config`, c.config);
      if (r.status >= 400) return `connector ${c.name} of the backup refused: ${(r.body as { message?: string } | null)?.message ?? r.status}`;
    }
    if (connectors.length > 0) ctx.log.info({ service: spec.name, connectors: connectors.length }, 'kafka-connect: put the connectors of the backup');
    return undefined;
  },

  async check(_spec, members, ctx) {
    const r = await ask(members, ctx, 'GET', '/connectors?expand=status');
    const states = Object.values(r.body as Record<string, { status: { connector: { state: string } } }>).map((v) => v.status.connector.state);
    return `${states.length} connectors, ${states.filter((s) => s === 'RUNNING').length} running`;
  },
};
