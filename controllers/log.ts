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

/**
 * Keeps every key once per line: pino writes bound keys (base bindings, child bindings) and the
 * fields of a call one after the other without merging, so `{identity}` bound at start-up and
 * passed again by a caller gave `{"identity":"B","identity":"B",...}`. A field equal to its bound
 * value is dropped; one that differs goes under `shadowed` (the bound value stays first-class).
 */
class PinoLoggerAdapter implements Logger {
  private made: PinoLogger | undefined;
  /**
   * `make` gives the pino logger on first use: a controller makes a child per reconcile, and pino
   * serializes a child's bindings when it is made (a visible share of vc-manager's CPU in
   * hack/bench-scale for lines mostly never written at the level in use).
   */
  constructor(private readonly root: PinoLogger, private readonly make: () => PinoLogger, private readonly bound: Record<string, unknown>) {}
  private get p(): PinoLogger {
    return (this.made ??= this.make());
  }
  private fields(obj: Record<string, unknown>): Record<string, unknown> {
    let out: Record<string, unknown> | undefined;
    for (const k of Object.keys(obj)) {
      if (!Object.hasOwn(this.bound, k)) continue;
      out ??= { ...obj };
      const v = out[k];
      delete out[k];
      if (!sameValue(v, this.bound[k])) out.shadowed = { ...(out.shadowed as Record<string, unknown> | undefined), [k]: v };
    }
    return out ?? obj;
  }
  debug(obj: Record<string, unknown>, msg: string): void {
    if (this.root.isLevelEnabled('debug')) this.p.debug(this.fields(obj), msg);
  }
  info(obj: Record<string, unknown>, msg: string): void {
    if (this.root.isLevelEnabled('info')) this.p.info(this.fields(obj), msg);
  }
  warn(obj: Record<string, unknown>, msg: string): void {
    if (this.root.isLevelEnabled('warn')) this.p.warn(this.fields(obj), msg);
  }
  error(obj: Record<string, unknown>, msg: string): void {
    if (this.root.isLevelEnabled('error')) this.p.error(this.fields(obj), msg);
  }
  child(bindings: Record<string, unknown>): Logger {
    const own = this.fields(bindings);
    return new PinoLoggerAdapter(this.root, () => this.p.child(own), { ...this.bound, ...own });
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'object' && a !== null && JSON.stringify(a) === JSON.stringify(b));
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
  return new PinoLoggerAdapter(p, () => p, { ...opts.bindings });
}

/** A logger that drops everything (tests, benchmarks). */
export function silentLogger(): Logger {
  return createLogger({ level: 'silent' });
}
