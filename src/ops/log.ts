// One winston logger for the process. JSON by default so log pipelines can parse it;
// `text` for people at a terminal.
import winston from 'winston';

export type Logger = winston.Logger;
export type LogFormat = 'json' | 'text';

export function createLogger(opts: { level?: string; format?: LogFormat; silent?: boolean } = {}): Logger {
  const format =
    opts.format === 'text'
      ? winston.format.combine(
          winston.format.timestamp(),
          winston.format.printf(({ timestamp, level, message, ...rest }) => {
            const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
            return `${String(timestamp)} ${level} ${String(message)}${extra}`;
          }),
        )
      : winston.format.combine(winston.format.timestamp(), winston.format.json());
  return winston.createLogger({
    level: opts.level ?? 'info',
    format,
    silent: opts.silent ?? false,
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

/** A logger that records entries in memory: tests assert on what a user would read in the log. */
export function createMemoryLogger(): { logger: Logger; entries: Array<Record<string, unknown>> } {
  const entries: Array<Record<string, unknown>> = [];
  const logger = winston.createLogger({
    level: 'debug',
    transports: [new winston.transports.Console({ silent: true })],
  });
  logger.on('data', (info: Record<string, unknown>) => entries.push({ ...info }));
  return { logger, entries };
}
