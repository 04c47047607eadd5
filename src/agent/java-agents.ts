// Java agents that members' JVMs load (the Prometheus JMX exporter, for the
// JVM types' metrics): not in the upstream images, so each node keeps the
// jars a type names in a directory of its own (`--java-agents-dir`), fetched
// once from where the type says (Maven Central) and checked against the
// SHA-256 the type pins, and the files step copies one into a member's volume
// before its container starts. A node that cannot reach Maven Central finds
// them already there: `npm run images` puts them in ~/.cache/firecampd/java-agents.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { commitFile } from '../fsync.ts';

export interface JavaAgentJar {
  /** Its file name in the directory. */
  file: string;
  url: string;
  sha256: string;
}

/** How long a fetch may take before it is given up (tried again at the member's next start). */
const FETCH_MS = 60_000;

const sha256Of = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

export class JavaAgents {
  /** Fetches under way, by file: two members starting at once fetch it once. */
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(readonly dir: string) {}

  /** The jar's path on this node, fetched first if it is not there; throws what to do when it cannot be had. */
  async path(jar: JavaAgentJar): Promise<string> {
    const file = path.join(this.dir, jar.file);
    if (fs.existsSync(file)) {
      const have = sha256Of(file);
      if (have !== jar.sha256)
        throw new Error(`${file} is not the ${jar.file} firecampd expects (SHA-256 ${have}, not ${jar.sha256}): remove it, and it is fetched anew`);
      return file;
    }
    let p = this.fetching.get(jar.file);
    if (!p) {
      p = this.fetch(jar, file).finally(() => this.fetching.delete(jar.file));
      this.fetching.set(jar.file, p);
    }
    return p;
  }

  private async fetch(jar: JavaAgentJar, file: string): Promise<string> {
    let body: Buffer;
    try {
      const res = await fetch(jar.url, { signal: AbortSignal.timeout(FETCH_MS) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      body = Buffer.from(await res.arrayBuffer());
    } catch (err) {
      throw new Error(
        `${jar.file} is not in ${this.dir} and could not be fetched from ${jar.url} (${(err as Error).message}): put it there (npm run images fetches it into ~/.cache/firecampd/java-agents; --java-agents-dir names the directory)`,
        { cause: err },
      );
    }
    const got = crypto.createHash('sha256').update(body).digest('hex');
    if (got !== jar.sha256) throw new Error(`${jar.url} gave a file whose SHA-256 is ${got}, not the ${jar.sha256} firecampd pins: not used`);
    fs.mkdirSync(this.dir, { recursive: true });
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, body);
    commitFile(tmp, file);
    return file;
  }
}
