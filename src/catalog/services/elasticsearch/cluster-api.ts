// The handful of REST calls the catalog makes to an Elasticsearch-compatible
// cluster (OpenSearch 2.x speaks Elasticsearch 7.10's API), with Node's own
// fetch: no client library is loaded into the daemon for a few GETs and PUTs.
// Members listen on their static IPs without authentication (see README.md).
import { errorMessage } from '../../../errors.ts';

export const HTTP_PORT = 9200;
/** Long enough for a busy cluster manager; short enough that a dead member does not hold up a catalog pass for long. */
const DEFAULT_TIMEOUT_MS = 5000;

/** What OpenSearch says went wrong, from its JSON error body if it sent one. */
function reasonOf(status: number, text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { type?: string; reason?: string } | string };
    if (typeof body.error === 'string') return body.error;
    if (body.error) return `${body.error.type ?? status}: ${body.error.reason ?? ''}`.trim();
  } catch {
    // Not JSON: the text itself says it.
  }
  return `${status} ${text.slice(0, 200)}`.trim();
}

/** One request to a member's REST API; its JSON answer, or an Error saying who failed to answer what, and why. */
export async function rest<T>(
  host: string,
  method: 'GET' | 'PUT' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`http://${host}:${HTTP_PORT}${path}`, {
      method,
      ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    // fetch's own message is "fetch failed"; the cause says what happened (ECONNREFUSED, a timeout).
    const cause = (err as { cause?: unknown }).cause;
    throw new Error(`${host}:${HTTP_PORT} did not answer ${method} ${path}: ${errorMessage(cause ?? err)}`, { cause: err });
  }
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} at ${host}: ${reasonOf(res.status, text)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The nodes in the cluster as its cluster manager has them: each node's name and the id of its current process (ephemeral_id, new at every start). */
export async function joinedNodes(host: string): Promise<Map<string, string>> {
  const r = await rest<{ nodes?: Record<string, { name: string; ephemeral_id: string }> }>(
    host,
    'GET',
    '/_cluster/state/nodes?filter_path=nodes.*.name,nodes.*.ephemeral_id',
  );
  return new Map(Object.values(r?.nodes ?? {}).map((n) => [n.name, n.ephemeral_id]));
}

export interface Health {
  status: 'green' | 'yellow' | 'red';
  number_of_data_nodes: number;
  unassigned_shards: number;
  initializing_shards: number;
}

export const health = (host: string) => rest<Health>(host, 'GET', '/_cluster/health');

export interface ShardRow {
  index: string;
  shard: string;
  /** "p" for a primary, "r" for a replica. */
  prirep: string;
  /** STARTED, RELOCATING, INITIALIZING or UNASSIGNED. */
  state: string;
  /** The node's name; "from -> ip id to" while it relocates; null while unassigned. */
  node: string | null;
}

export const shards = (host: string) => rest<ShardRow[]>(host, 'GET', '/_cat/shards?format=json&h=index,shard,prirep,state,node', undefined, 15_000);

/** The node a shard copy is on (the one it leaves while it relocates), or undefined while it is unassigned. */
export const nodeOf = (row: ShardRow): string | undefined => row.node?.split(' ')[0] || undefined;

/**
 * Shard copies that could be active and are not. An index may ask for more
 * copies than there are data nodes (1 replica on a service of one member):
 * those can never be assigned, and health stays yellow for good, so they are
 * not counted; every other copy that is not started (or relocating, which is
 * started elsewhere) is.
 */
export function copiesShort(rows: ShardRow[], dataNodes: number): number {
  const groups = new Map<string, ShardRow[]>();
  for (const r of rows) groups.set(`${r.index}/${r.shard}`, [...(groups.get(`${r.index}/${r.shard}`) ?? []), r]);
  let short = 0;
  for (const copies of groups.values()) {
    const active = copies.filter((c) => c.state === 'STARTED' || c.state === 'RELOCATING').length;
    short += Math.max(0, Math.min(copies.length, dataNodes) - active);
  }
  return short;
}

/**
 * Why the cluster is not settled, or undefined: green, or yellow only for
 * copies that have nowhere to go (copiesShort). Red (a primary is not
 * active) never is.
 */
export async function notSettled(host: string): Promise<string | undefined> {
  const h = await health(host);
  if (h.status === 'green') return undefined;
  if (h.status === 'red')
    return `cluster health is red: a primary shard is not active (${h.unassigned_shards} unassigned, ${h.initializing_shards} initializing)`;
  const short = copiesShort(await shards(host), h.number_of_data_nodes);
  return short > 0 ? `cluster health is yellow: ${short} shard copies to recover` : undefined;
}

/** The cluster's persistent settings, flat ("cluster.routing.allocation.enable"). */
export async function persistentSettings(host: string): Promise<Record<string, string>> {
  return (await rest<{ persistent?: Record<string, string> }>(host, 'GET', '/_cluster/settings?flat_settings=true')).persistent ?? {};
}

/** Set persistent cluster settings; null puts one back to its default. */
export const putPersistent = (host: string, settings: Record<string, string | null>) => rest(host, 'PUT', '/_cluster/settings', { persistent: settings });

/** The node names excluded from the cluster managers' voting configuration. */
export async function votingExclusions(host: string): Promise<string[]> {
  const r = await rest<{ metadata?: { cluster_coordination?: { voting_config_exclusions?: { node_name: string }[] } } }>(
    host,
    'GET',
    '/_cluster/state/metadata?filter_path=metadata.cluster_coordination.voting_config_exclusions',
  );
  return (r?.metadata?.cluster_coordination?.voting_config_exclusions ?? []).map((e) => e.node_name);
}

/** The elected cluster manager's node name. */
export async function electedManager(host: string): Promise<string | undefined> {
  return (await rest<{ node: string }[]>(host, 'GET', '/_cat/cluster_manager?format=json'))[0]?.node;
}
