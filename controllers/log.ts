// Structured logs: one JSON object per line (pino) on stderr by default. Every line a controller
// writes about an object carries `controller` and `key` (`Kind ns/name`) through child loggers.

import { pino, destination, stdTimeFunctions, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { Logger } from './types.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default stderr (fd 2), so stdout stays free for command output. */
  destination?: DestinationStream;
  bindings?: Record<string, unknown>;
}

class PinoLoggerAdapter implements Logger {
  constructor(private readonly p: PinoLogger) {}
  debug(obj: Record<string, unknown>, msg: string): void {
    this.p.debug(obj, msg);
  }
  info(obj: Record<string, unknown>, msg: string): void {
    this.p.info(obj, msg);
  }
  warn(obj: Record<string, unknown>, msg: string): void {
    this.p.warn(obj, msg);
  }
  error(obj: Record<string, unknown>, msg: string): void {
    this.p.error(obj, msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    return new PinoLoggerAdapter(this.p.child(bindings));
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const p = pino(
    {
      level: opts.level ?? 'info',
      base: opts.bindings ?? {},
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? destination({ fd: 2, sync: true }),
  );
  return new PinoLoggerAdapter(p);
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent' });
}
