// Start real firecampd processes for tests and wait for them to be ready.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

export const REPO = path.resolve(import.meta.dirname, '..', '..');
export const CLI_ENTRY = path.join(REPO, 'bin', 'firecampd.ts');

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh directory, removed when the test process exits. */
export function tempDir(prefix = 'firecampd-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export interface Running {
  proc: ChildProcess;
  port: number;
  lines: string[];
  exited: Promise<number | null>;
}

/** Run the CLI from source; resolves with exit code, stdout and stderr. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--import', 'tsx', CLI_ENTRY, ...args], {
      cwd: REPO,
      env: { ...process.env, FIRECAMPD_TOKEN: undefined, ...env },
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Start a daemon from source on a free loopback port and wait for its "started" log line. */
export async function startDaemon(args: string[], command = [process.execPath, '--import', 'tsx', CLI_ENTRY], env: NodeJS.ProcessEnv = {}): Promise<Running> {
  // Free ports for the API and the DNS server, so that many nodes share one machine.
  const bind = [...(args.includes('--bind') ? [] : ['--bind', '127.0.0.1:0']), ...(args.includes('--dns-listen') ? [] : ['--dns-listen', '127.0.0.1:0'])];
  const proc = spawn(command[0], [...command.slice(1), ...bind, ...args], {
    cwd: REPO,
    env: { ...process.env, FIRECAMPD_TOKEN: undefined, FIRECAMPD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stderr });
    const timer = setTimeout(() => reject(new Error(`daemon did not start in 20s:\n${lines.join('\n')}`)), 20_000);
    rl.on('line', (line) => {
      lines.push(line);
      try {
        const rec = JSON.parse(line) as { msg?: string; bind?: string };
        if (rec.msg === 'firecampd started') {
          clearTimeout(timer);
          resolve(Number(rec.bind!.split(':').pop()));
        }
      } catch {
        /* not JSON: keep it for the error message */
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before starting:\n${lines.join('\n')}`));
    });
  });
  return { proc, port, lines, exited };
}

export async function stopDaemon(r: Running, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill(signal);
  return r.exited;
}
