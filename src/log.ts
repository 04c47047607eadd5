// Structured logging: JSON lines for machines, readable lines on a terminal.
import { pino, destination, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Force pretty or JSON output; by default pretty only when stderr is a TTY. */
  pretty?: boolean;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? 'info';
  const usePretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  // Logs go to stderr so that stdout stays free for command output.
  const stream = usePretty ? pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }) : destination({ fd: 2, sync: true });
  return pino(
    {
      level,
      base: { pid: process.pid },
      // Never let a secret reach a log line, whatever object it rides in on.
      redact: { paths: ['token', '*.token', 'headers.authorization', '*.headers.authorization'], censor: '[redacted]' },
    },
    stream,
  );
}
