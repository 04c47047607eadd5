// One firecampd node: wires the data dir, the API server and the parts that
// the other modules add, and takes them down in reverse order on shutdown.
import { ApiServer, RawResponse } from './api/server.ts';
import { formatHostPort, type NodeConfig } from './config.ts';
import { openDataDir, type DataDir } from './datadir.ts';
import type { Logger } from './log.ts';
import { createRegistry } from './metrics.ts';
import { VERSION } from './version.ts';

export class Daemon {
  readonly api: ApiServer;
  readonly dataDir: DataDir;
  private readonly startedAt = Date.now();
  private closing?: Promise<void>;
  /** The port actually bound (differs from the config when it asked for 0). */
  port = 0;

  constructor(readonly config: NodeConfig, private readonly log: Logger) {
    this.dataDir = openDataDir(config.dataDir, config.token);
    const metrics = createRegistry();
    this.api = new ApiServer({ token: this.dataDir.token, log });
    this.api.route('GET', '/v1/health', () => ({
      status: 'ok',
      node_id: this.dataDir.nodeId,
      name: config.name,
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
    }));
    this.api.route('GET', '/metrics', async () => new RawResponse(metrics.contentType, await metrics.metrics()));
  }

  async start(): Promise<void> {
    const addr = await this.api.listen(this.config.bind.host, this.config.bind.port);
    this.port = addr.port;
    this.log.info(
      {
        node_id: this.dataDir.nodeId,
        data_dir: this.dataDir.path,
        bind: formatHostPort({ host: addr.address, port: addr.port }),
        advertise: formatHostPort(this.config.advertise),
        version: VERSION,
      },
      'firecampd started',
    );
  }

  stop(): Promise<void> {
    this.closing ??= (async () => {
      this.log.info('shutting down');
      await this.api.close();
      this.dataDir.lock.close();
      this.log.info('stopped');
    })();
    return this.closing;
  }
}
