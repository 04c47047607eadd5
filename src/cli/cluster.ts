// firecampd cluster status|members|leave|remove
import type { Argv } from 'yargs';
import { client, print, table, type GlobalArgs } from './output.ts';

export interface MemberInfo {
  id: string;
  name: string;
  addr: string;
  zone: string;
  role: 'voter' | 'learner' | 'none';
  leader: boolean;
  match?: number;
  active?: boolean;
}

export interface ClusterStatus {
  node: string;
  role: string;
  term: number;
  leader: string | null;
  commit: number;
  applied: number;
  revision: number;
  members: MemberInfo[];
}

export function clusterCommands(y: Argv): Argv {
  return y
    .command('status', 'this node and the cluster as it sees it', {}, async (a: GlobalArgs) => {
      const s = await (await client(a)).request<ClusterStatus>('GET', '/v1/cluster/status');
      print(a, s, () =>
        [
          `node      ${s.node} (${s.role})`,
          `leader    ${s.leader ?? 'none'}`,
          `term      ${s.term}`,
          `commit    ${s.commit} (applied ${s.applied})`,
          `revision  ${s.revision}`,
          `voters    ${s.members.filter((m) => m.role === 'voter').length}, learners ${s.members.filter((m) => m.role === 'learner').length}`,
        ].join('\n'),
      );
    })
    .command('members', 'list the nodes', {}, async (a: GlobalArgs) => {
      const s = await (await client(a)).request<ClusterStatus>('GET', '/v1/cluster/status');
      print(a, s.members, () =>
        table(
          ['ID', 'NAME', 'ADDRESS', 'ZONE', 'ROLE', 'LEADER'],
          s.members.map((m) => [m.id, m.name, m.addr, m.zone, m.role, m.leader ? '*' : '']),
        ),
      );
    })
    .command('leave', 'remove this node from the cluster (hands over leadership first)', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ removed: string }>('POST', '/v1/cluster/leave', {});
      print(a, r, () => `node ${r.removed} left the cluster`);
    })
    .command(
      'remove <id>',
      'remove a node (dead or alive) from the cluster',
      (c) => c.positional('id', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (await client(a)).request<{ removed: string }>('POST', '/v1/cluster/remove', { id: a.id });
        print(a, r, () => `node ${r.removed} removed`);
      },
    )
    .demandCommand(1, 'name a cluster command: status, members, leave or remove');
}
