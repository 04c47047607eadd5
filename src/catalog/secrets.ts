// A service's generated secrets: made once at create, kept under the
// controldb's secret prefix (never served by the KV API), written by agents
// into 0600 files on members' volumes, shown only by `service credentials`.
import { randomBytes } from 'node:crypto';

/** 32 characters of [A-Za-z0-9_-]: safe in config files, SQL literals and URLs without quoting. */
export const newSecret = (): string => randomBytes(24).toString('base64url');

/** The secrets a type needs: those kept from before as they are, the missing ones made. */
export function generateSecrets(names: readonly string[], kept: Record<string, string>): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, kept[n] ?? newSecret()]));
}
