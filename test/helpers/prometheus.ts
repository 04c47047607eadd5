// A real Prometheus (Debian's prometheus package) for the test beds: run in
// the bed's client namespace, where a user's monitoring would sit, it finds
// the members through firecampd's HTTP service discovery on a node (the
// API's token and CA, as monitoring/README.md shows) and scrapes them and the
// nodes' own /metrics every second. The test asks it what a user's dashboard would show.
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestBed } from '../bed/bed.ts';
import { tempDir } from './proc.ts';
import { pollUntil } from './wait.ts';

export interface Prometheus {
  /** An instant query: each series' labels and value. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: number }[]>;
  /** The targets it scrapes now, with their labels and health. */
  targets(): Promise<{ labels: Record<string, string>; health: string; lastError: string }[]>;
  /** What it wrote, for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * `discovery`: where it asks for targets, host:port, one URL for the cluster as monitoring/README.md says (the
 * cluster's API name, api.<domain>, which the nodes' DNS servers answer with the live nodes); `resolvers`: the DNS
 * servers it resolves names with (the nodes'), in a /etc/resolv.conf of its own; `nodes`: every node, whose own
 * /metrics it scrapes.
 */
export async function startPrometheus(o: {
  ns: string;
  listen: string;
  discovery: string;
  resolvers: string[];
  nodes: string[];
  token: string;
  caFile: string;
}): Promise<Prometheus> {
  try {
    execFileSync('prometheus', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error("prometheus is not installed: apt-get install prometheus (Debian's package, with promtool)");
  }
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'token'), o.token, { mode: 0o600 });
  const tokenFile = path.join(dir, 'token');
  const discovery = [
    `      - url: https://${o.discovery}/v1/prometheus/targets`,
    '        refresh_interval: 2s',
    `        authorization: { type: Bearer, credentials_file: ${tokenFile} }`,
    `        tls_config: { ca_file: ${o.caFile} }`,
  ];
  fs.writeFileSync(
    path.join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      '  - job_name: firecampd-members',
      '    http_sd_configs:',
      ...discovery,
      // The nodes' own /metrics: the per-member gauges each node keeps of the members it runs.
      '  - job_name: firecampd-nodes',
      '    scheme: https',
      `    authorization: { type: Bearer, credentials_file: ${tokenFile} }`,
      `    tls_config: { ca_file: ${o.caFile} }`,
      `    static_configs: [{ targets: [${o.nodes.map((n) => `'${n}'`).join(', ')}] }]`,
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'prometheus.log');
  const out = fs.openSync(logFile, 'w');
  // A dead resolver is given up after a second: the test kills nodes.
  const resolvConf = path.join(dir, 'resolv.conf');
  fs.writeFileSync(resolvConf, [...o.resolvers.map((r) => `nameserver ${r}`), 'options timeout:1 attempts:1', ''].join('\n'));
  const args = [
    `--config.file=${path.join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=${o.listen}`,
    '--log.level=info',
  ];
  // In the client namespace, with a mount namespace of its own for its resolv.conf; exec, so that the signal to stop reaches it.
  const proc: ChildProcess = spawn(
    'nsenter',
    [
      `--net=/var/run/netns/${o.ns}`,
      'unshare',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind "$0" /etc/resolv.conf && exec prometheus "$@"',
      resolvConf,
      ...args,
    ],
    { stdio: ['ignore', out, out] },
  );
  const base = `http://${o.listen}`;
  const api = async <T>(p: string): Promise<T> => {
    const r = await fetch(base + p, { signal: AbortSignal.timeout(5000) });
    const body = (await r.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${p}: ${body.error}`);
    return body.data;
  };
  const log = () => fs.readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n');
  const p: Prometheus = {
    async query(expr) {
      const data = await api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async targets() {
      const data = await api<{ activeTargets: { labels: Record<string, string>; health: string; lastError: string }[] }>('/api/v1/targets?state=active');
      return data.activeTargets;
    },
    log,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      fs.closeSync(out);
    },
  };
  try {
    await pollUntil(
      () =>
        fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(2000) }).then(
          (r) => r.ok,
          () => false,
        ),
      Boolean,
      { ms: 30_000, what: 'Prometheus ready', context: log },
    );
  } catch (err) {
    await p.stop();
    throw err;
  }
  return p;
}

/** A Prometheus in the bed's client namespace, as a user of the bed's cluster would run one: discovery through api.fc.test, the bed's token, `caFile` the cluster CA. */
export function startBedPrometheus(bed: TestBed, caFile: string): Promise<Prometheus> {
  return startPrometheus({
    ns: bed.client!.ns,
    listen: `${bed.client!.ip}:9090`,
    discovery: `api.fc.test:${bed.nodes[0].addr.split(':')[1]}`,
    resolvers: bed.nodes.map((n) => n.ip),
    nodes: bed.nodes.map((n) => n.addr),
    token: bed.token,
    caFile,
  });
}
