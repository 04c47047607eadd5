// `firecampd events [--service S] [--follow] [--json]`: what the platform did
// and when, oldest first; --follow goes on with what comes (one JSON object
// a line with --json).
import type { Argv } from 'yargs';
import type { ClusterEvent } from '../events/events.ts';
import { client, table, type GlobalArgs } from './output.ts';

/** How often --follow asks for what is new. */
const followEveryMs = () => 1000;

const row = (e: ClusterEvent) => [e.at, e.kind, e.service ?? '', e.member ?? '', e.node ?? '', e.reason];
const HEADERS = ['TIME', 'KIND', 'SERVICE', 'MEMBER', 'NODE', 'REASON'];

export function eventsCommand(y: Argv): Argv {
  return y
    .option('service', { type: 'string', describe: "only this service's events" })
    .option('follow', { alias: 'f', type: 'boolean', default: false, describe: 'keep printing events as they come' })
    .option('limit', { type: 'number', default: 1000, describe: 'the newest this many, to start with' });
}

export async function showEvents(a: GlobalArgs): Promise<void> {
  const api = await client(a);
  const service = a.service as string | undefined;
  const ask = (after?: string) =>
    api.request<{ events: ClusterEvent[]; last?: string }>(
      'GET',
      `/v1/events?limit=${Number(a.limit)}${service ? `&service=${encodeURIComponent(service)}` : ''}${after ? `&after=${encodeURIComponent(after)}` : ''}`,
    );
  let r = await ask();
  if (a.json && !a.follow) {
    process.stdout.write(JSON.stringify({ events: r.events }, null, 2) + '\n');
    return;
  }
  const write = (events: ClusterEvent[]) => {
    if (a.json) for (const e of events) process.stdout.write(JSON.stringify(e) + '\n');
    else if (events.length > 0) process.stdout.write(table(HEADERS, events.map(row)).split('\n').slice(1).join('\n') + '\n');
  };
  if (a.json) write(r.events);
  else process.stdout.write(table(HEADERS, r.events.map(row)) + '\n');
  while (a.follow) {
    await new Promise((res) => setTimeout(res, followEveryMs()));
    r = await ask(r.last);
    write(r.events);
  }
}
