// A real S3-compatible server for the tests: S3Proxy (Maven Central,
// org.gaul:s3proxy, one jar with its dependencies) on its filesystem backend,
// with AWS v4 signatures and one access key. The jar is fetched into ~/.m2 by
// Maven the first time (as `npm run images` fetches the JVM services' jars)
// and kept there. stop() kills it and removes its data.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { tempDir } from './proc.ts';
import { pollUntil } from './wait.ts';

const VERSION = '2.6.0';
const JAR = path.join(os.homedir(), '.m2', 'repository', 'org', 'gaul', 's3proxy', VERSION, `s3proxy-${VERSION}-jar-with-dependencies.jar`);

export interface S3Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A bucket made for this test. */
  bucket: string;
  stop(): void;
}

function jar(): string {
  if (fs.existsSync(JAR)) return JAR;
  try {
    execFileSync('mvn', ['-q', 'dependency:get', `-Dartifact=org.gaul:s3proxy:${VERSION}:jar:jar-with-dependencies`, '-Dtransitive=false'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 600_000,
    });
  } catch (err) {
    throw new Error(`S3Proxy ${VERSION} is missing and Maven could not fetch it (needs mvn and Maven Central): ${(err as Error).message}`, { cause: err });
  }
  return JAR;
}

/**
 * Start S3Proxy on `host:port` (the bed's gateway, for nodes in their namespaces) with a bucket. Given the `dir` of an
 * earlier one, it serves what that one stored (a store outlives the clusters that use it).
 */
export async function startS3Server(host = '127.0.0.1', o: { port?: number; dir?: string } = {}): Promise<S3Server & { dir: string }> {
  const dir = o.dir ?? tempDir('firecampd-s3-');
  const port = o.port ?? 18_000 + Math.floor(Math.random() * 1000);
  const endpoint = `http://${host}:${port}`;
  const s: Omit<S3Server, 'stop'> = {
    endpoint,
    region: 'us-east-1',
    accessKeyId: 'firecampd-test',
    secretAccessKey: 'not-a-real-secret-0123456789',
    bucket: 'backups',
  };
  fs.mkdirSync(path.join(dir, 'data'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 's3proxy.conf'),
    [
      `s3proxy.endpoint=${endpoint}`,
      's3proxy.authorization=aws-v4',
      `s3proxy.identity=${s.accessKeyId}`,
      `s3proxy.credential=${s.secretAccessKey}`,
      'jclouds.provider=filesystem',
      `jclouds.filesystem.basedir=${path.join(dir, 'data')}`,
    ].join('\n') + '\n',
  );
  const proc: ChildProcess = spawn('java', ['-Xmx256m', '-jar', jar(), '--properties', path.join(dir, 's3proxy.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out = (out + String(d)).slice(-4000)));
  proc.stderr!.on('data', (d) => (out = (out + String(d)).slice(-4000)));
  const stop = () => {
    proc.kill('SIGKILL');
  };
  process.on('exit', stop);
  const client = new S3Client({
    endpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
  });
  try {
    await pollUntil(
      async () => {
        if (proc.exitCode !== null) throw new Error(`S3Proxy exited ${proc.exitCode}: ${out}`);
        await client.send(new CreateBucketCommand({ Bucket: s.bucket })).catch((err: Error) => {
          if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
        });
        return true;
      },
      (ok) => ok,
      { ms: 60_000, every: 250, what: `S3Proxy answering at ${endpoint}`, context: () => out },
    );
  } catch (err) {
    stop();
    throw err;
  } finally {
    client.destroy();
  }
  return { ...s, stop, dir };
}
