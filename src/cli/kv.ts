// firecampd kv get|put|del|txn|watch and firecampd lease grant|keepalive|revoke|list
import fs from 'node:fs';
import type { Argv } from 'yargs';
import { UserError } from '../errors.ts';
import type { KeyValue, RangeResponse, TxnResponse, WatchEvent } from '../controldb/types.ts';
import { client, print, table, type GlobalArgs } from './output.ts';

const kvRows = (kvs: KeyValue[]) => kvs.map((k) => [k.key, k.value, k.mod_revision, k.version, k.lease || '']);

export function kvCommands(y: Argv): Argv {
  return y
    .command(
      'get <key>',
      'read a key, or every key under a prefix',
      (c) =>
        c
          .positional('key', { type: 'string', demandOption: true })
          .option('prefix', { type: 'boolean', default: false })
          .option('limit', { type: 'number', default: 0 })
          .option('serializable', { type: 'boolean', default: false, describe: 'read the local replica without asking the leader' }),
      async (a: GlobalArgs) => {
        const r = await (
          await client(a)
        ).request<RangeResponse & { revision: number }>('POST', '/v1/kv/range', {
          key: a.key,
          prefix: a.prefix,
          limit: a.limit,
          serializable: a.serializable,
        });
        if (!a.json && !a.prefix && r.kvs.length === 0) throw new UserError(`key not found: ${a.key as string}`, 404, 'not_found');
        print(a, r, () => table(['KEY', 'VALUE', 'MOD_REV', 'VERSION', 'LEASE'], kvRows(r.kvs)));
      },
    )
    .command(
      'put <key> <value>',
      'write a key',
      (c) =>
        c
          .positional('key', { type: 'string', demandOption: true })
          .positional('value', { type: 'string', demandOption: true })
          .option('lease', { type: 'number', describe: 'attach to this lease: the key goes when it expires' }),
      async (a: GlobalArgs) => {
        const r = await (
          await client(a)
        ).request<{ revision: number }>('POST', '/v1/kv/put', {
          key: a.key,
          value: String(a.value),
          ...(a.lease ? { lease: a.lease } : {}),
        });
        print(a, r, () => `OK revision ${r.revision}`);
      },
    )
    .command(
      'del <key>',
      'delete a key, or every key under a prefix',
      (c) => c.positional('key', { type: 'string', demandOption: true }).option('prefix', { type: 'boolean', default: false }),
      async (a: GlobalArgs) => {
        const r = await (await client(a)).request<{ revision: number; deleted: number }>('POST', '/v1/kv/delete', { key: a.key, prefix: a.prefix });
        print(a, r, () => `deleted ${r.deleted} key(s) at revision ${r.revision}`);
      },
    )
    .command(
      'txn [file]',
      'run a transaction given as JSON {compare, success, failure} in FILE or on stdin',
      (c) => c.positional('file', { type: 'string', describe: 'JSON file; - or nothing for stdin' }),
      async (a: GlobalArgs) => {
        const file = a.file as string | undefined;
        const text = fs.readFileSync(!file || file === '-' ? 0 : file, 'utf8');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch (err) {
          throw new UserError(`the transaction is not valid JSON: ${(err as Error).message}`);
        }
        const r = await (await client(a)).request<TxnResponse>('POST', '/v1/kv/txn', body);
        print(a, r, () => `${r.succeeded ? 'SUCCEEDED' : 'FAILED'} revision ${r.revision}\n${r.responses.map((x) => JSON.stringify(x)).join('\n')}`);
        if (!r.succeeded) process.exitCode = 3;
      },
    )
    .command(
      'watch <key>',
      'print changes to a key or prefix as they happen',
      (c) =>
        c
          .positional('key', { type: 'string', demandOption: true })
          .option('prefix', { type: 'boolean', default: false })
          .option('from', { type: 'number', default: 0, describe: 'start at this revision (replays history kept since)' }),
      async (a: GlobalArgs) => {
        const cl = await client(a);
        const q = new URLSearchParams({ key: String(a.key), prefix: String(a.prefix), from: String(a.from) });
        for await (const line of cl.stream(`/v1/watch?${q}`)) {
          const msg = JSON.parse(line) as { revision?: number; events?: WatchEvent[] };
          if (!msg.events) continue;
          if (a.json) process.stdout.write(line + '\n');
          else for (const e of msg.events) process.stdout.write(`${msg.revision} ${e.type.toUpperCase()} ${e.kv.key} ${e.kv.value}\n`);
        }
      },
    )
    .demandCommand(1, 'name a kv command: get, put, del, txn or watch');
}

export function leaseCommands(y: Argv): Argv {
  return y
    .command(
      'grant <ttl>',
      'grant a lease of TTL seconds',
      (c) => c.positional('ttl', { type: 'number', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (await client(a)).request<{ id: number; ttl: number }>('POST', '/v1/lease/grant', { ttl: a.ttl });
        print(a, r, () => `lease ${r.id} granted with TTL ${r.ttl}s`);
      },
    )
    .command(
      'keepalive <id>',
      'keep a lease alive until interrupted',
      (c) => c.positional('id', { type: 'number', demandOption: true }),
      async (a: GlobalArgs) => {
        const cl = await client(a);
        for (;;) {
          const r = await cl.request<{ id: number; ttl: number }>('POST', '/v1/lease/keepalive', { id: a.id });
          print(a, r, () => `lease ${r.id} kept alive with TTL ${r.ttl}s`);
          await new Promise((res) => setTimeout(res, Math.max(500, (r.ttl * 1000) / 3)));
        }
      },
    )
    .command(
      'revoke <id>',
      'revoke a lease and delete its keys',
      (c) => c.positional('id', { type: 'number', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (await client(a)).request<{ revision: number }>('POST', '/v1/lease/revoke', { id: a.id });
        print(a, r, () => `lease ${a.id as number} revoked at revision ${r.revision}`);
      },
    )
    .command('list', 'list leases and their keys', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ leases: { id: number; ttl: number; keys: string[] }[] }>('GET', '/v1/lease/list');
      print(a, r, () =>
        table(
          ['ID', 'TTL', 'KEYS'],
          r.leases.map((l) => [l.id, l.ttl, l.keys.join(',')]),
        ),
      );
    })
    .demandCommand(1, 'name a lease command: grant, keepalive, revoke or list');
}
