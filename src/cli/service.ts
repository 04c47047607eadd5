// firecampd service create|list|get|scale|delete|logs
import type { Argv } from 'yargs';
import type { ServiceView } from '../catalog/routes.ts';
import { UserError } from '../errors.ts';
import { client, print, table, type GlobalArgs } from './output.ts';

function members(s: ServiceView): string {
  return table(
    ['MEMBER', 'NODE', 'EPOCH', 'IP', 'DNS', 'STATE'],
    s.members.map((m) => [m.name, m.node, m.epoch, m.ip, m.dns, m.message ? `${m.state}: ${m.message}` : m.state]),
  );
}

export function serviceCommands(y: Argv): Argv {
  return y
    .command(
      'create',
      'create a service and wait until it is ACTIVE',
      (c) =>
        c
          .option('type', { choices: ['redis'] as const, demandOption: true })
          .option('name', { type: 'string', demandOption: true })
          .option('replicas', { type: 'number', default: 1, describe: 'members: a primary and replicas' })
          .option('memory', { type: 'number', describe: 'MiB of memory per member' })
          .option('cpus', { type: 'number', describe: 'CPUs per member' })
          .option('volume-size', { type: 'number', describe: 'MiB of disk per member', defaultDescription: '256' })
          .option('image', { type: 'string', describe: 'container image', defaultDescription: 'the type\'s own' })
          .option('detach', { type: 'boolean', default: false, describe: 'return at once instead of waiting' })
          .option('timeout', { type: 'number', default: 300, describe: 'seconds to wait for ACTIVE' }),
      async (a: GlobalArgs) => {
        const api = await client(a);
        const spec = {
          type: a.type,
          name: a.name,
          replicas: a.replicas,
          ...(a.memory ? { memoryMiB: a.memory } : {}),
          ...(a.cpus ? { cpus: a.cpus } : {}),
          ...(a.volumeSize ? { volumeSizeMiB: a.volumeSize } : {}),
          ...(a.image ? { image: a.image } : {}),
        };
        let s = await api.request<ServiceView>('POST', '/v1/services', spec);
        if (!a.detach) {
          const deadline = Date.now() + (a.timeout as number) * 1000;
          let last = '';
          while (s.status !== 'ACTIVE') {
            if (s.status === 'FAILED') throw new UserError(`service ${s.spec.name} FAILED: ${s.message}`);
            if (Date.now() > deadline) throw new UserError(`service ${s.spec.name} is still ${s.status} after ${a.timeout} s: ${s.message}; see "firecampd service get ${s.spec.name}"`);
            const running = s.members.filter((m) => m.state === 'running').length;
            const line = `${s.status}: ${s.members.length}/${s.spec.replicas} members placed, ${running} running${s.message ? ` (${s.message})` : ''}`;
            if (line !== last && !a.json) process.stderr.write(line + '\n');
            last = line;
            await new Promise((r) => setTimeout(r, 500));
            s = await api.request<ServiceView>('GET', `/v1/service?name=${encodeURIComponent(s.spec.name)}`);
          }
        }
        print(a, s, () => `${s.spec.name}: ${s.status}\n${members(s)}`);
      },
    )
    .command('list', 'the services and their status', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ services: ServiceView[] }>('GET', '/v1/services');
      print(a, r, () =>
        table(
          ['NAME', 'TYPE', 'STATUS', 'MEMBERS', 'MESSAGE'],
          r.services.map((s) => [s.spec.name, s.spec.type, s.status, `${s.members.filter((m) => m.state === 'running').length}/${s.spec.replicas}`, s.message]),
        ),
      );
    })
    .command(
      'get <name>',
      'a service with its members, nodes, IPs and state',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const s = await (await client(a)).request<ServiceView>('GET', `/v1/service?name=${encodeURIComponent(String(a.name))}`);
        print(a, s, () => `${s.spec.name} (${s.spec.type}): ${s.status} ${s.message}\n${members(s)}`);
      },
    )
    .command(
      'scale <name> <replicas>',
      'change the number of members and wait until the service is ACTIVE again',
      (c) => c.positional('name', { type: 'string', demandOption: true }).positional('replicas', { type: 'number', demandOption: true }),
      async (a: GlobalArgs) => {
        const api = await client(a);
        let s = await api.request<ServiceView>('POST', '/v1/services/scale', { name: a.name, replicas: a.replicas });
        while (s.status !== 'ACTIVE') {
          if (s.status === 'FAILED') throw new UserError(`service ${s.spec.name} FAILED: ${s.message}`);
          if (!a.json) process.stderr.write(`${s.status}: ${s.members.filter((m) => m.state === 'running').length}/${s.spec.replicas} running\n`);
          await new Promise((r) => setTimeout(r, 1000));
          s = await api.request<ServiceView>('GET', `/v1/service?name=${encodeURIComponent(s.spec.name)}`);
        }
        print(a, s, () => `${s.spec.name}: ${s.status}\n${members(s)}`);
      },
    )
    .command(
      'delete <name>',
      'stop and remove a service (volumes are kept)',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const s = await (await client(a)).request<ServiceView>('POST', '/v1/services/delete', { name: a.name });
        print(a, s, () => `${s.spec.name}: ${s.status}`);
      },
    )
    .command(
      'logs <name>',
      "a member's container logs, from whichever node runs it",
      (c) =>
        c
          .positional('name', { type: 'string', demandOption: true })
          .option('member', { type: 'string', describe: 'which member', defaultDescription: '<name>-0' })
          .option('follow', { alias: 'f', type: 'boolean', default: false })
          .option('tail', { type: 'number', default: 100, describe: 'lines from the end' }),
      async (a: GlobalArgs) => {
        const q = new URLSearchParams({ name: String(a.name), follow: String(a.follow), tail: String(a.tail), ...(a.member ? { member: String(a.member) } : {}) });
        for await (const line of (await client(a)).stream(`/v1/service/logs?${q}`)) process.stdout.write(line + '\n');
      },
    )
    .demandCommand(1, 'name a service command: create, list, get, scale, delete or logs');
}
