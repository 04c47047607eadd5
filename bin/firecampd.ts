// firecampd: with no sub-command it runs a node; with one it talks to a node's API.
import fs from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_LEASE_TTL } from '../src/config.ts';
import { UserError, errorMessage } from '../src/errors.ts';
import { clusterCommands } from '../src/cli/cluster.ts';
import { kvCommands, leaseCommands } from '../src/cli/kv.ts';
import { snapshotCommands } from '../src/cli/snapshot.ts';
import { serviceCommands } from '../src/cli/service.ts';
import { backupCommands } from '../src/cli/backup.ts';
import { eventsCommand, showEvents } from '../src/cli/events.ts';
import { tokenCommands } from '../src/cli/token.ts';
import { client, print, type GlobalArgs } from '../src/cli/output.ts';
import { VERSION } from '../src/version.ts';

async function runDaemon(argv: Record<string, unknown>): Promise<void> {
  // Loaded here so that CLI commands start without the daemon's modules.
  const { resolveNodeConfig } = await import('../src/config.ts');
  const { createLogger } = await import('../src/log.ts');
  const { Daemon } = await import('../src/daemon.ts');
  const config = resolveNodeConfig(argv);
  const log = createLogger({ level: argv.logLevel as string | undefined });
  const daemon = new Daemon(config, log);
  const shutdown = (signal: string) => {
    log.info({ signal }, 'signal received');
    daemon.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'unclean shutdown');
        process.exit(1);
      },
    );
  };
  daemon.onLeft = () => shutdown('left the cluster');
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  await daemon.start();
}

function daemonOptions(y: Argv) {
  return (
    y
      .option('bind', { type: 'string', describe: 'API and peer address host:port', default: undefined, defaultDescription: '0.0.0.0:27040' })
      .option('advertise', { type: 'string', describe: 'address other nodes use to reach this one', defaultDescription: 'first non-loopback IPv4' })
      .option('join', { type: 'string', array: true, describe: 'address of a node of the cluster to join (repeat or comma-separate)' })
      .option('zone', { type: 'string', describe: 'failure zone of this node', defaultDescription: 'default' })
      .option('region', { type: 'string', describe: 'region of its zone (a Cassandra datacenter)', defaultDescription: 'default' })
      .option('labels', { type: 'string', array: true, describe: 'NAME=VALUE labels services may require (repeat or comma-separate), e.g. disk=ssd' })
      .option('name', { type: 'string', describe: 'node name', defaultDescription: 'hostname' })
      .option('dns-listen', { type: 'string', describe: 'embedded DNS server address', defaultDescription: '127.0.0.1:5353' })
      .option('docker-host', { type: 'string', describe: 'Docker Engine socket or URL', defaultDescription: 'DOCKER_HOST or /var/run/docker.sock' })
      .option('volumes', {
        type: 'string',
        describe: 'member volumes: local (a directory each), loop:/shared/dir (ext4 images on shared storage) or aws-ebs',
        defaultDescription: 'local',
      })
      .option('static-ips', {
        type: 'string',
        describe:
          "members' static IPs: none, local:IFACE[/PREFIX] (ip addr + gratuitous ARP) or aws:IFACE[/PREFIX] (secondary private IPs of that interface's ENI, then the same)",
        defaultDescription: 'none',
      })
      .option('dns', {
        type: 'string',
        describe: "where members' names are kept besides every node's embedded DNS server: embedded (nowhere else) or route53:HOSTED_ZONE_ID",
        defaultDescription: 'embedded',
      })
      .option('dns-domain', { type: 'string', describe: 'the cluster DNS domain', defaultDescription: 'firecamp.local' })
      .option('ip-pool', {
        type: 'string',
        describe: 'static IPs the catalog gives members: FIRST-LAST (e.g. 10.0.0.200-10.0.0.250)',
        defaultDescription: 'none',
      })
      .option('lease-ttl', {
        type: 'number',
        describe: "seconds without contact before a node's members move elsewhere",
        defaultDescription: String(DEFAULT_LEASE_TTL),
      })
      .option('events-max', { type: 'number', describe: 'events the cluster keeps at most (the leader removes the oldest)', defaultDescription: '10000' })
      .option('events-max-age-hours', { type: 'number', describe: 'hours the cluster keeps an event', defaultDescription: '168' })
      .option('java-agents-dir', {
        type: 'string',
        describe: "where the node keeps the Java agents members' JVMs load for their metrics (fetched from Maven Central when missing)",
        defaultDescription: '<data-dir>/java-agents',
      })
      .option('member-log-mib', {
        type: 'number',
        describe: "MiB of each member's output kept on its volume, across its rotated files",
        defaultDescription: '16',
      })
      .option('member-log-max-age-hours', { type: 'number', describe: "hours a member's rotated log file is kept", defaultDescription: '168' })
      // A test-only fault switch (FIRECAMPD_UNSAFE_STALE_READS=true): reads skip ReadIndex.
      .option('unsafe-stale-reads', { type: 'boolean', hidden: true, default: false })
      .config('config', 'JSON file with any of these options (keys as flags)')
  );
}

/** --token-file: the token from a file, so that it is not in the command line for ps to show. */
function readTokenFile(argv: Record<string, unknown>): void {
  const file = argv.tokenFile as string | undefined;
  if (!file) return;
  if (argv.token) throw new UserError('give --token or --token-file, not both');
  try {
    argv.token = fs.readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new UserError(`--token-file ${file}: ${errorMessage(err)}`);
  }
}

export async function main(args: string[]): Promise<void> {
  const cli = yargs(args)
    .scriptName('firecampd')
    .env('FIRECAMPD')
    .option('data-dir', { type: 'string', describe: 'where this node keeps its state', global: true, defaultDescription: '/var/lib/firecampd (root)' })
    .option('token', {
      type: 'string',
      describe: 'API token, or a join token when joining (better: FIRECAMPD_TOKEN or --token-file, which ps does not show)',
      global: true,
    })
    .option('token-file', { type: 'string', describe: 'read the token from this file', global: true })
    .option('ca-file', { type: 'string', describe: "the cluster CA to verify nodes with (a node's <data-dir>/tls/ca.crt)", global: true })
    .middleware(readTokenFile)
    .option('addr', { type: 'string', describe: 'API address of the node to talk to', global: true, defaultDescription: '127.0.0.1:27040' })
    .option('log-level', { type: 'string', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal'], global: true, default: 'info' })
    .option('json', { type: 'boolean', describe: 'print JSON for scripts', global: true, default: false })
    .option('debug', { type: 'boolean', hidden: true, global: true, default: false, describe: 'print stack traces of errors' })
    .command('$0', 'run a firecampd node', daemonOptions, runDaemon)
    .command(
      'watchdog',
      false,
      (y) =>
        y
          .option('cluster', { type: 'string', demandOption: true })
          .option('node', { type: 'string', demandOption: true })
          .option('mount-root', { type: 'string', demandOption: true })
          .option('docker-host', { type: 'string' })
          .option('static-ips', { type: 'string', default: 'none' }),
      async (argv) => {
        const { runWatchdog } = await import('../src/agent/watchdog.ts');
        const { LocalIps, NoIps } = await import('../src/agent/providers/local-ip.ts');
        const { parseStaticIps } = await import('../src/config.ts');
        const ips = parseStaticIps(argv.staticIps);
        await runWatchdog({
          cluster: argv.cluster,
          node: argv.node,
          mountRoot: argv.mountRoot,
          dockerHost: argv.dockerHost,
          ips: ips.kind === 'local' ? new LocalIps(ips.iface, ips.prefix) : new NoIps(),
        });
        process.exit(0);
      },
    )
    .command('version', 'print the version', {}, (argv: GlobalArgs) => print(argv, { version: VERSION }, () => VERSION))
    .command('health', 'ask a node whether it serves and can run members (exit 1 unless status is ok)', {}, async (argv: GlobalArgs) => {
      const res = await (await client(argv)).request<Record<string, unknown> & { status: string; problems?: string[] }>('GET', '/v1/health');
      const problems = res.problems ?? [];
      const warnings = (res.warnings as string[] | undefined) ?? [];
      print(argv, res, () =>
        [
          ...Object.entries(res)
            .filter(([k]) => k !== 'problems' && k !== 'warnings')
            .map(
              ([k, v]) =>
                `${k.padEnd(16)}${v === null || v === undefined ? '-' : typeof v === 'object' ? JSON.stringify(v) : String(v as string | number | boolean)}`,
            ),
          ...problems.map((p) => `${'problem'.padEnd(16)}${p}`),
          ...warnings.map((w) => `${'warning'.padEnd(16)}${w}`),
        ].join('\n'),
      );
      // Scripts rely on the exit code: the node answered, but it is not fit.
      if (res.status !== 'ok') {
        process.stderr.write(`firecampd: node ${String(res.name ?? res.node_id)} is ${res.status}: ${problems.join('; ') || 'no reason given'}\n`);
        process.exitCode = 1;
      }
    })
    .command('kv', 'read and write the controldb', kvCommands)
    .command('lease', 'grant, keep alive and revoke leases', leaseCommands)
    .command('cluster', 'the nodes of the cluster', clusterCommands)
    .command('snapshot', 'save the controldb or restore it as a new cluster', snapshotCommands)
    .command('token', 'join tokens and API tokens', tokenCommands)
    .command(
      'service',
      'stateful services: create, list, get, scale, upgrade, restart, config, credentials, ca, stop, start, delete, logs, connector',
      serviceCommands,
    )
    .command('backup', 'backups of services: create, list, get, delete, restore; the cluster key and target', backupCommands)
    .command('events', 'what the platform did and when: members placed, moved, started, healthy; leases lost; backups', eventsCommand, showEvents)
    .strict()
    .version(false)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`firecampd: ${msg}\nRun "firecampd --help" for usage.\n`);
      process.exit(2);
    });
  await cli.parseAsync();
}

main(hideBin(process.argv)).catch((err: unknown) => {
  process.stderr.write(`firecampd: ${errorMessage(err)}\n`);
  if (!(err instanceof UserError) && (process.env.FIRECAMPD_DEBUG || process.argv.includes('--debug'))) console.error(err);
  process.exit(1);
});
