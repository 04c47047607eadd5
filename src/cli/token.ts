// firecampd token create|list|revoke|rotate|join
import type { Argv } from 'yargs';
import { UserError } from '../errors.ts';
import { client, print, table, type GlobalArgs } from './output.ts';

interface TokenInfo {
  id: string;
  kind: string;
  created_at: string;
  expires_at: string | null;
  description: string;
  default: boolean;
}

function unconfirmedNote(unconfirmed: string[]): string {
  return unconfirmed.length === 0 ? '' : `\nnot confirmed by ${unconfirmed.join(', ')} (unreachable); they refuse it once they catch up`;
}

export function tokenCommands(y: Argv): Argv {
  return y
    .command(
      'create <kind>',
      'make a join token or an API token (printed once)',
      (c) =>
        c
          .positional('kind', { choices: ['join', 'api'] as const, demandOption: true })
          .option('ttl', { type: 'string', describe: 'expire after this long: 90s, 30m, 12h, 7d' })
          .option('description', { type: 'string', describe: 'what the token is for' }),
      async (a: GlobalArgs) => {
        const ttl = a.ttl as string | undefined;
        const body = { kind: a.kind, ...(ttl ? { ttl: parseDuration(ttl) } : {}), ...(a.description ? { description: a.description } : {}) };
        const r = await (await client(a)).request<{ id: string; token: string; expires_at: string | null }>('POST', '/v1/tokens', body);
        print(a, r, () => r.token);
      },
    )
    .command('list', 'the tokens of the cluster (never their secrets)', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ tokens: TokenInfo[] }>('GET', '/v1/tokens');
      print(a, r, () =>
        table(
          ['ID', 'KIND', 'CREATED', 'EXPIRES', 'DESCRIPTION'],
          r.tokens.map((t) => [t.id, t.default ? `${t.kind} (standing)` : t.kind, t.created_at, t.expires_at ?? 'never', t.description]),
        ),
      );
    })
    .command(
      'revoke <id>',
      'revoke a token at once on every node',
      (c) => c.positional('id', { type: 'string', demandOption: true }),
      async (a: GlobalArgs) => {
        const r = await (await client(a)).request<{ revoked: string; unconfirmed: string[] }>('POST', '/v1/tokens/revoke', { id: a.id });
        print(a, r, () => `revoked ${r.revoked}${unconfirmedNote(r.unconfirmed)}`);
      },
    )
    .command('rotate', 'replace the standing join token (other tokens are kept)', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ token: string; unconfirmed: string[] }>('POST', '/v1/tokens/rotate');
      print(a, r, () => r.token + unconfirmedNote(r.unconfirmed));
    })
    .command('join', 'print the standing join token', {}, async (a: GlobalArgs) => {
      const r = await (await client(a)).request<{ token: string }>('GET', '/v1/tokens/join');
      print(a, r, () => r.token);
    })
    .demandCommand(1, 'name a token command: create, list, revoke, rotate or join');
}

/** "90s", "30m", "12h", "7d" or plain seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(s.trim());
  if (!m) throw new UserError(`--ttl: "${s}" is not a duration like 90s, 30m, 12h or 7d`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}
