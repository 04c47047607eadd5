// The node's log keeper: for each member it holds, it reads the container's
// output from Docker (with Docker's times) and appends it to the member's
// kept log on its volume (files.ts), marking each start, restart and stop.
// Level-triggered: while a member is held, the keeper attaches to its
// container whenever the container is there and runs, and again after each
// crash restart, from where the kept log ends; nothing is read twice, even
// across a restart of the agent (the state file says where it ended).
import type Docker from 'dockerode';
import { PassThrough } from 'node:stream';
import type { Logger } from '../../log.ts';
import { containerName, type MemberSpec } from '../members.ts';
import { DEFAULT_LOG_BOUNDS, MemberLogFiles, compareTimes, lineTime, type LogBounds, type LogState } from './files.ts';

/** How soon the keeper looks again for a container that is not there or not running. */
const ATTACH_RETRY_MS = 500;
/** How long a stop waits for the last of the container's output before its mark. */
const DRAIN_MS = 2000;

interface Keeping {
  spec: MemberSpec;
  files: MemberLogFiles;
  state: LogState;
  closed: boolean;
  stream?: NodeJS.ReadableStream & { destroy?: () => void };
  /** Settles when the attachment in progress ends. */
  ended: Promise<void>;
}

const key = (m: MemberSpec) => `${m.service}/${m.name}`;

/** A member's log takes at most a sixteenth of its volume, whatever the node's bound: the volume is for its data. */
const VOLUME_SHARE = 16;

export function boundsFor(spec: MemberSpec, bounds: LogBounds = DEFAULT_LOG_BOUNDS): LogBounds {
  const share = spec.volume ? Math.floor((spec.volume.sizeMiB << 20) / VOLUME_SHARE) : bounds.maxBytes;
  return { ...bounds, maxBytes: Math.min(bounds.maxBytes, share) };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LogKeeper {
  private readonly kept = new Map<string, Keeping>();

  constructor(
    private readonly docker: Docker,
    private readonly nodeId: string,
    private readonly log: Logger,
    private readonly bounds?: LogBounds,
  ) {}

  /** The kept log of a member held here, while its volume is mounted here. */
  filesOf(service: string, member: string): MemberLogFiles | undefined {
    return this.kept.get(`${service}/${member}`)?.files;
  }

  /** Keep the member's log in its volume (mounted at volumeDir) from now on; idempotent. */
  open(spec: MemberSpec, volumeDir: string): void {
    const have = this.kept.get(key(spec));
    if (have && !have.closed && have.spec.epoch === spec.epoch) return;
    const files = new MemberLogFiles(volumeDir, boundsFor(spec, this.bounds), (msg) => this.log.warn({ member: key(spec) }, msg));
    const k: Keeping = { spec, files, state: files.readState(), closed: false, ended: Promise.resolve() };
    this.kept.set(key(spec), k);
    void this.keep(k).catch((err: Error) => this.log.warn({ member: key(spec), err: err.message }, 'log keeper stopped'));
  }

  /** The member stopped here (its container is gone or going): its last output, a mark saying why, and no more. */
  async close(spec: MemberSpec, why: string): Promise<void> {
    const k = this.kept.get(key(spec));
    if (!k || k.closed) return;
    k.closed = true;
    await Promise.race([k.ended, sleep(DRAIN_MS)]);
    k.stream?.destroy?.();
    this.mark(k, `stopped on node ${this.nodeId}: ${why}`);
    this.kept.delete(key(spec));
  }

  /** The agent stops and the members run on: let go without a mark; the next agent carries on where this one ended. */
  detachAll(): void {
    for (const k of this.kept.values()) {
      k.closed = true;
      k.stream?.destroy?.();
    }
    this.kept.clear();
  }

  /** A line of firecampd's own, at `at` (now unless given: a start is marked at the container's start, before its first line). */
  private mark(k: Keeping, what: string, at = new Date().toISOString()): void {
    k.files.append(`${at} --- firecampd: ${k.spec.name} ${what} ---\n`);
    k.state.lastTime = at;
    k.files.writeState(k.state);
  }

  /** Attach to the container whenever it runs, until closed. */
  private async keep(k: Keeping): Promise<void> {
    const c = this.docker.getContainer(containerName(k.spec));
    while (!k.closed) {
      let info: Awaited<ReturnType<typeof c.inspect>>;
      try {
        info = await c.inspect();
      } catch {
        await sleep(ATTACH_RETRY_MS);
        continue;
      }
      const startedAt = info.State.StartedAt;
      // The same container: from the last line kept. A new one: all it wrote, from its first line.
      let after = k.state.lastTime;
      if (k.state.container !== info.Id) {
        const from = k.state.node && k.state.node !== this.nodeId ? `, moved here from node ${k.state.node}` : '';
        this.mark(k, `started on node ${this.nodeId} at epoch ${k.spec.epoch} (${k.spec.image})${from}`, startedAt);
        after = undefined;
      } else if (k.state.startedAt !== startedAt) {
        this.mark(k, `restarted by Docker on node ${this.nodeId} after its process exited`, startedAt);
      }
      k.state = { ...k.state, container: info.Id, startedAt, node: this.nodeId };
      k.files.writeState(k.state);
      await this.attach(k, c, after);
      if (!k.closed) await sleep(ATTACH_RETRY_MS);
    }
  }

  /** Read the container's output after `after` (all of it when undefined) until it stops or the keeper closes, appending each whole line. */
  private async attach(k: Keeping, c: Docker.Container, after: string | undefined): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      // Docker takes whole seconds here: the lines of that second already kept are skipped below.
      const since = after ? Math.floor(Date.parse(after) / 1000) : 0;
      stream = await c.logs({ follow: true, stdout: true, stderr: true, timestamps: true, since });
    } catch (err) {
      // A log driver Docker cannot read back (none): say so once, in the kept log, and wait for the stop.
      const msg = (err as Error).message;
      if (!k.state.unreadable) {
        k.state.unreadable = true;
        this.mark(k, `output not kept here: Docker cannot read it back (${msg.replace(/^\(HTTP code \d+\)[^-]*- /, '').trim()})`);
      }
      while (!k.closed) await sleep(ATTACH_RETRY_MS);
      return;
    }
    k.stream = stream;
    const out = new PassThrough();
    this.docker.modem.demuxStream(stream, out, out);
    let partial = '';
    k.ended = new Promise<void>((resolve) => {
      const done = () => {
        out.end();
        resolve();
      };
      stream.on('end', done);
      stream.on('close', done);
      stream.on('error', done);
    });
    out.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const cut = text.lastIndexOf('\n');
      partial = text.slice(cut + 1);
      if (cut < 0) return;
      const fresh = text
        .slice(0, cut)
        .split('\n')
        .filter((line) => {
          const t = lineTime(line);
          return t === undefined || after === undefined || compareTimes(t, after) > 0;
        });
      if (fresh.length === 0) return;
      k.files.append(fresh.join('\n') + '\n');
      const last = lineTime(fresh[fresh.length - 1]);
      if (last) k.state.lastTime = last;
      k.files.writeState(k.state);
    });
    await k.ended;
  }
}
