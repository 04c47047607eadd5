// How the CLI prints: aligned tables for people, JSON for scripts.
export interface GlobalArgs {
  addr?: string;
  token?: string;
  dataDir?: string;
  json?: boolean;
  [option: string]: unknown;
}

export function table(headers: string[], rows: (string | number | boolean | null | undefined)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === undefined ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}

export function print(argv: GlobalArgs, value: unknown, human: () => string): void {
  process.stdout.write(argv.json ? JSON.stringify(value) + '\n' : human() + '\n');
}

export async function client(argv: GlobalArgs) {
  const { ApiClient } = await import('../client.ts');
  return new ApiClient({ addr: argv.addr, token: argv.token, dataDir: argv.dataDir, caFile: argv.caFile as string | undefined });
}
