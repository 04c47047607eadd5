// The members' containers, through the Docker Engine API (dockerode). Each
// container carries labels naming the cluster, node, service, member and
// epoch, so that an agent coming back after a crash knows what it finds.
import Docker from 'dockerode';
import { PassThrough } from 'node:stream';
import type { MemberSpec } from './members.ts';
import { containerName, exporterName } from './members.ts';

export const LABEL = {
  cluster: 'firecampd.cluster',
  node: 'firecampd.node',
  service: 'firecampd.service',
  member: 'firecampd.member',
  epoch: 'firecampd.epoch',
  /** The member's static IP: the watchdog drops it when it fences the node. */
  ip: 'firecampd.ip',
  /** On a container that runs beside a member's (its metrics exporter): what it is. */
  sidecar: 'firecampd.sidecar',
} as const;

export interface Found {
  id: string;
  name: string;
  service: string;
  member: string;
  epoch: number;
  running: boolean;
  ip?: string;
  /** A container beside the member's own (its metrics exporter), not the member itself. */
  sidecar?: string;
}

/** A member's process limits as the Engine API takes them (HostConfig.Ulimits), by name as in `docker run --ulimit`. */
export function dockerUlimits(limits: NonNullable<MemberSpec['ulimits']>): { Name: string; Soft: number; Hard: number }[] {
  return Object.entries(limits).flatMap(([name, l]) => (l ? [{ Name: name, Soft: l.soft, Hard: l.hard }] : []));
}

/** The memory limit of a member's metrics exporter. */
const EXPORTER_MEMORY_MIB = 64;

/** The member's volumes as Docker binds, each with `mode` (`:ro`, or '' for read-write). */
const memberBinds = (m: MemberSpec, volumeDir: string | undefined, journalDir: string | undefined, mode: string): string[] => [
  ...(m.volume && volumeDir ? [`${volumeDir}:${m.volume.mountPath}${mode}`] : []),
  ...(m.journal && journalDir ? [`${journalDir}:${m.journal.mountPath}${mode}`] : []),
];

export function dockerClient(host: string | undefined): Docker {
  const h = host ?? process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock';
  if (h.startsWith('unix://')) return new Docker({ socketPath: h.slice('unix://'.length) });
  if (h.startsWith('/')) return new Docker({ socketPath: h });
  const u = new URL(h.replace(/^tcp:/, 'http:'));
  return new Docker({ host: u.hostname, port: Number(u.port || 2375) });
}

/** Whether a member's image is on this node's engine, and if not, where its pull stands. */
export type ImageState = { kind: 'present' } | { kind: 'absent' } | { kind: 'pulling' } | { kind: 'failed'; message: string };

/** After a failed pull, how long the next one waits. */
const PULL_RETRY_MS = 30_000;
/** A pull that has not finished by then is given up (and tried again later). */
const PULL_DEADLINE_MS = 15 * 60_000;

export class Containers {
  /** Images being pulled or whose last pull failed, and since when. */
  private readonly pulls = new Map<string, { since: number; error?: string }>();
  /** Called when a pull ends either way, so that the agent looks again at once. */
  onPulled?: () => void;

  constructor(
    readonly docker: Docker,
    private readonly cluster: string,
    private readonly node: string,
    /** Where this node is, told to every member it runs (FIRECAMPD_ZONE, FIRECAMPD_REGION): Cassandra's rack and datacenter. */
    private readonly where?: { zone: string; region: string },
  ) {}

  /** This node's member containers, running or not. */
  async list(): Promise<Found[]> {
    const all = await this.docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${this.cluster}`, `${LABEL.node}=${this.node}`] } });
    return all.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      service: c.Labels[LABEL.service] ?? '',
      member: c.Labels[LABEL.member] ?? '',
      epoch: Number(c.Labels[LABEL.epoch] ?? 0),
      running: c.State === 'running',
      ...(c.Labels[LABEL.ip] ? { ip: c.Labels[LABEL.ip] } : {}),
      ...(c.Labels[LABEL.sidecar] ? { sidecar: c.Labels[LABEL.sidecar] } : {}),
    }));
  }

  /** Create and start the member's container; a leftover one of the same name is removed first. */
  async run(m: MemberSpec, volumeDir: string | undefined, journalDir?: string, hostsFile?: string): Promise<string> {
    const name = containerName(m);
    await this.remove(name);
    const c = await this.docker.createContainer({
      name,
      Image: m.image,
      Cmd: m.command,
      Env: Object.entries({
        ...(this.where ? { FIRECAMPD_ZONE: this.where.zone, FIRECAMPD_REGION: this.where.region } : {}),
        ...m.env,
      }).map(([k, v]) => `${k}=${v}`),
      ...(m.user ? { User: m.user } : {}),
      ...(m.stopSignal ? { StopSignal: m.stopSignal } : {}),
      Labels: this.labels(m),
      HostConfig: {
        NetworkMode: 'host',
        Binds: [...memberBinds(m, volumeDir, journalDir, ''), ...(hostsFile ? [`${hostsFile}:/etc/hosts:ro`] : [])],
        // Restarts after a crash of the process; never after the agent stopped it (fencing).
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 5 },
        ...(m.resources?.memoryMiB ? { Memory: m.resources.memoryMiB * 1024 * 1024 } : {}),
        ...(m.resources?.cpus ? { NanoCpus: Math.round(m.resources.cpus * 1e9) } : {}),
        ...(m.ulimits ? { Ulimits: dockerUlimits(m.ulimits) } : {}),
        ...(m.logging ? { LogConfig: { Type: m.logging.driver, Config: m.logging.options ?? {} } } : {}),
      },
      // Durations in nanoseconds. A member is unhealthy after three failed checks in a row.
      ...(m.healthCheck ? { Healthcheck: { Test: ['CMD', ...m.healthCheck], Interval: 1e9, Timeout: 2e9, Retries: 3 } } : {}),
    });
    await c.start();
    return c.id;
  }

  /**
   * Create and start the member's metrics exporter (spec.metrics.exporter) beside it: the host's network, as the
   * member's, so that it reaches the member and listens on the member's address; the member's user; its volumes
   * read-only. Labelled as the member's, so that fencing (the watchdog) kills it with the member.
   */
  async runExporter(m: MemberSpec, volumeDir: string | undefined, journalDir?: string): Promise<string> {
    const exporter = m.metrics?.exporter;
    if (!exporter) throw new Error(`${m.name} has no metrics exporter`);
    const name = exporterName(m);
    await this.remove(name);
    const c = await this.docker.createContainer({
      name,
      Image: exporter.image,
      // The whole command line, whether the image names its program as ENTRYPOINT (upstream's) or CMD.
      ...(exporter.command ? { Entrypoint: exporter.command } : {}),
      Env: Object.entries(exporter.env ?? {}).map(([k, v]) => `${k}=${v}`),
      ...(m.user ? { User: m.user } : {}),
      Labels: { ...this.labels(m), [LABEL.sidecar]: 'metrics' },
      HostConfig: {
        NetworkMode: 'host',
        Binds: memberBinds(m, volumeDir, journalDir, ':ro'),
        // An exporter that exits (the member was not up yet) tries again, for as long as the member runs.
        RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 0 },
        // Exporters are small; a bound keeps one that leaks from taking the member's memory.
        Memory: EXPORTER_MEMORY_MIB * 1024 * 1024,
      },
    });
    await c.start();
    return c.id;
  }

  private labels(m: MemberSpec): Record<string, string> {
    return {
      [LABEL.cluster]: this.cluster,
      [LABEL.node]: this.node,
      [LABEL.service]: m.service,
      [LABEL.member]: m.name,
      [LABEL.epoch]: String(m.epoch),
      ...(m.ip ? { [LABEL.ip]: m.ip } : {}),
    };
  }

  /**
   * As `docker run` does, an image this engine lacks is pulled. The caller
   * learns that it is absent first, so that it can say "pulling" before the
   * pull begins (startPull). A failed pull is tried again after
   * PULL_RETRY_MS; until then this says why it failed and what to do.
   */
  async imageState(image: string): Promise<ImageState> {
    try {
      await this.docker.getImage(image).inspect();
      this.pulls.delete(image);
      return { kind: 'present' };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
    const last = this.pulls.get(image);
    if (!last) return { kind: 'absent' };
    if (last.error === undefined) return { kind: 'pulling' };
    if (Date.now() - last.since >= PULL_RETRY_MS) return { kind: 'absent' };
    return {
      kind: 'failed',
      message: `image ${image} is not on this node's Docker engine and could not be pulled (${last.error}); load it on every node ("npm run images" builds firecampd's stand-ins from Debian packages)`,
    };
  }

  /**
   * Pull in the background, one pull per image: a slow or unreachable
   * registry holds up only the members that need that image, not the rest of
   * the node's convergence. onPulled is called when it ends either way.
   */
  startPull(image: string): void {
    const running = this.pulls.get(image);
    if (running && running.error === undefined) return;
    const pull: { since: number; error?: string } = { since: Date.now() };
    this.pulls.set(image, pull);
    this.pull(image).then(
      () => this.onPulled?.(),
      (err: Error) => {
        // dockerode puts the engine's answer after its own "(HTTP code 500) server error - ".
        pull.error = err.message.replace(/^\(HTTP code \d+\)[^-]*- /, '').trim();
        pull.since = Date.now();
        this.onPulled?.();
      },
    );
  }

  private async pull(image: string): Promise<void> {
    const stream = await this.docker.pull(image, { abortSignal: AbortSignal.timeout(PULL_DEADLINE_MS) });
    // The pull's outcome comes at the end of its progress stream, not with the response.
    await new Promise<void>((resolve, reject) => this.docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
    // A stream cut short (the deadline) can end without an error: only the image itself says the pull worked.
    await this.docker.getImage(image).inspect();
  }

  async state(
    name: string,
  ): Promise<{ running: boolean; exitCode: number; error: string; restarts: number; health?: 'starting' | 'healthy' | 'unhealthy' } | undefined> {
    try {
      const info = await this.docker.getContainer(name).inspect();
      const health = info.State.Health?.Status;
      return {
        running: info.State.Running,
        exitCode: info.State.ExitCode,
        error: info.State.Error,
        // Docker's own restarts of it after a crash (its restart policy).
        restarts: info.RestartCount ?? 0,
        ...(health === 'starting' || health === 'healthy' || health === 'unhealthy' ? { health } : {}),
      };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Stop (SIGTERM, then SIGKILL after `graceSeconds`) and remove; idempotent. */
  async stop(name: string, graceSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(name).stop({ t: graceSeconds });
    } catch (err) {
      const code = (err as { statusCode?: number }).statusCode;
      if (code !== 304 && code !== 404) throw err;
    }
    await this.remove(name);
  }

  async remove(name: string): Promise<void> {
    try {
      await this.docker.getContainer(name).remove({ force: true });
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode !== 404) throw err;
    }
  }

  /** SIGKILL, and Docker marks the container stopped on purpose (its restart policy leaves it down). */
  async kill(nameOrId: string): Promise<void> {
    await this.docker.getContainer(nameOrId).kill();
  }

  /** The host pid of the container's first process. */
  async pid(nameOrId: string): Promise<number> {
    return (await this.docker.getContainer(nameOrId).inspect()).State.Pid;
  }

  /** Run `cmd` in the member's container (see execInContainer). */
  exec(m: MemberSpec, cmd: string[], timeoutMs: number, user?: string): Promise<ExecResult> {
    return execInContainer(this.docker, m, cmd, timeoutMs, user);
  }
}

/** Output kept of each stream: a tool's answer, not a log. */
const MAX_OUTPUT = 256 << 10;

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Run `cmd` in the member's container on this node; the answer once it exits. */
export async function execInContainer(docker: Docker, spec: MemberSpec, cmd: string[], timeoutMs: number, user?: string): Promise<ExecResult> {
  const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
  // `timeout` (busybox's and coreutils' alike) ends the program in the container: Docker cannot stop an exec itself.
  const exec = await docker.getContainer(containerName(spec)).exec({
    Cmd: ['timeout', String(seconds), ...cmd],
    AttachStdout: true,
    AttachStderr: true,
    User: user ?? spec.user ?? '',
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = collect();
  const err = collect();
  docker.modem.demuxStream(stream, out.sink, err.sink);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`${cmd[0]} in ${spec.name} did not finish in ${seconds} s`));
    }, timeoutMs + 5000);
    stream.on('end', () => {
      clearTimeout(timer);
      resolve();
    });
    stream.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, stdout: out.text(), stderr: err.text() };
}

/**
 * Run `cmd` in the member's container on this node with its stdout as a stream (a dump: too large to hold), and the
 * exit code and the end of stderr once it ends. No timeout: the caller ends the stream to give up.
 */
export async function execStream(
  docker: Docker,
  spec: MemberSpec,
  cmd: string[],
  user?: string,
): Promise<{ stdout: PassThrough; done: Promise<{ exitCode: number; stderr: string }> }> {
  const exec = await docker.getContainer(containerName(spec)).exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, User: user ?? spec.user ?? '' });
  const stream = await exec.start({ hijack: true, stdin: false });
  const stdout = new PassThrough();
  const err = collect();
  docker.modem.demuxStream(stream, stdout, err.sink);
  const done = new Promise<{ exitCode: number; stderr: string }>((resolve, reject) => {
    stream.on('end', () => {
      stdout.end();
      exec.inspect().then((info) => resolve({ exitCode: info.ExitCode ?? -1, stderr: err.text() }), reject);
    });
    stream.on('error', (e) => {
      stdout.destroy(e);
      reject(e);
    });
  });
  return { stdout, done };
}

function collect(): { sink: PassThrough; text: () => string } {
  const chunks: Buffer[] = [];
  let size = 0;
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => {
    if (size < MAX_OUTPUT) chunks.push(c);
    size += c.length;
  });
  return { sink, text: () => Buffer.concat(chunks).toString('utf8').slice(0, MAX_OUTPUT) };
}
