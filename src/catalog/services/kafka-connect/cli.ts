// firecampd service connector put|get|delete SERVICE [NAME]: the connectors of a Kafka Connect service.
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { client, print, table, type GlobalArgs } from '../../../cli/output.ts';
import { UserError } from '../../../errors.ts';
import type { ConnectorView } from './connectors.ts';

/**
 * A connector's config from a JSON file: either its settings ({"connector.class": …}) or the shape of
 * Connect's POST /connectors ({"name": …, "config": {…}}). Values are passed as strings, as Connect keeps them.
 */
export function readConnectorConfig(file: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`--config ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UserError(`--config ${file} is not JSON: ${(err as Error).message}`);
  }
  const obj = parsed as Record<string, unknown> | null;
  const config = obj && typeof obj.config === 'object' && obj.config !== null ? (obj.config as Record<string, unknown>) : obj;
  if (!config || typeof config !== 'object' || Array.isArray(config)) throw new UserError(`--config ${file}: a JSON object of the connector's settings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(config)) {
    if (typeof v === 'object' && v !== null) throw new UserError(`--config ${file}: setting ${k} is an object; Connect takes strings, numbers and booleans`);
    out[k] = String(v);
  }
  if (!out['connector.class']) throw new UserError(`--config ${file} names no connector.class`);
  return out;
}

function describe(c: ConnectorView): string {
  const s = c.status;
  const head = `${c.name} (${c.config['connector.class']}): ${s ? `${s.connector.state} on ${s.connector.worker_id}` : 'no status yet'}`;
  const tasks = s?.tasks.length
    ? table(
        ['TASK', 'STATE', 'WORKER'],
        s.tasks.map((t) => [t.id, t.trace ? `${t.state}: ${t.trace.split('\n')[0]}` : t.state, t.worker_id]),
      )
    : '';
  return tasks ? `${head}\n${tasks}` : head;
}

export function connectorCommands(y: Argv): Argv {
  return y
    .command(
      'put <service> <name>',
      "make a connector, or change an existing one's config",
      (c) =>
        c
          .positional('service', { type: 'string', demandOption: true, describe: 'the kafka-connect service' })
          .positional('name', { type: 'string', demandOption: true, describe: 'the connector' })
          .option('config', { type: 'string', demandOption: true, describe: "a JSON file of the connector's settings, connector.class among them" }),
      async (a: GlobalArgs) => {
        const config = readConnectorConfig(String(a.config));
        const r = await (
          await client(a)
        ).request<ConnectorView & { created: boolean }>('POST', '/v1/service/connector', { name: a.service, connector: a.name, config });
        print(a, r, () => `${r.created ? 'created' : 'changed'}: ${describe(r)}`);
      },
    )
    .command(
      'get <service> [name]',
      'a connector with its config and its tasks, or every connector of the service',
      (c) => c.positional('service', { type: 'string', demandOption: true }).positional('name', { type: 'string' }),
      async (a: GlobalArgs) => {
        const api = await client(a);
        const service = encodeURIComponent(String(a.service));
        if (typeof a.name === 'string') {
          const r = await api.request<ConnectorView>('GET', `/v1/service/connector?name=${service}&connector=${encodeURIComponent(a.name)}`);
          return print(a, r, () => `${describe(r)}\n${table(['SETTING', 'VALUE'], Object.entries(r.config).sort())}`);
        }
        const r = await api.request<{ name: string; connectors: ConnectorView[] }>('GET', `/v1/service/connectors?name=${service}`);
        print(a, r, () => (r.connectors.length ? r.connectors.map(describe).join('\n') : `${r.name}: no connectors`));
      },
    )
    .command(
      'delete <service> <name>',
      'delete a connector (its offsets stay in the offsets topic)',
      (c) => c.positional('service', { type: 'string', demandOption: true }).positional('name', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (
          await client(a)
        ).request<{ connector: string; deleted: boolean }>('POST', '/v1/service/connector/delete', { name: a.service, connector: a.name });
        print(a, r, () => `${r.connector}: deleted`);
      },
    )
    .demandCommand(1, 'name a connector command: put, get or delete');
}
