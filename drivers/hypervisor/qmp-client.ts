// A small QMP (QEMU Machine Protocol) client over any byte stream (the node's unix socket reached
// through Transport.connect). Protocol: QEMU sends a greeting {"QMP": {...}}; the client must send
// qmp_capabilities before anything else; then each {"execute", "arguments", "id"} gets exactly one
// {"return"|"error", "id"} reply, and asynchronous {"event", "data", "timestamp"} messages arrive
// in between. Messages are JSON objects separated by CRLF.
//
// Contract: execute() rejects with QmpError for an {"error"} reply (class and desc kept), with
// QmpClosedError when the connection ends before the reply (e.g. after `quit`, or QEMU died), and
// with QmpTimeoutError after its timeout. Events go to every listener registered with onEvent.

import type { Duplex } from 'node:stream';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    public readonly command: string,
    public readonly errorClass: string,
    public readonly desc: string,
  ) {
    super(`QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}
export class QmpClosedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QmpClosedError';
  }
}
export class QmpTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpTimeoutError';
  }
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

export interface QmpConnectOptions {
  /** For the greeting and qmp_capabilities; default 10 000 ms. */
  timeoutMs?: number;
  /** A label for errors (node and domain). */
  label?: string;
}

export class QmpClient {
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(e: QmpEvent) => void>();
  private readonly closeWaiters = new Set<(e: Error) => void>();
  private greetingWaiter?: { resolve: (g: Record<string, unknown>) => void; reject: (e: Error) => void };
  private closedError?: Error;
  /** The greeting's QMP object: version and capabilities. */
  greeting?: Record<string, unknown>;

  private constructor(
    private readonly stream: Duplex,
    private readonly label: string,
  ) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => this.onData(chunk));
    stream.on('error', (e: Error) => this.fail(new QmpClosedError(`${this.label}: QMP connection error: ${e.message}`, { cause: e })));
    stream.on('close', () => this.fail(new QmpClosedError(`${this.label}: QMP connection closed`)));
    stream.on('end', () => this.fail(new QmpClosedError(`${this.label}: QMP connection closed by QEMU`)));
  }

  /** Reads the greeting and negotiates capabilities; the returned client is ready for execute(). */
  static async connect(stream: Duplex, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const c = new QmpClient(stream, opts.label ?? 'qmp');
    const timeoutMs = opts.timeoutMs ?? 10_000;
    try {
      c.greeting = await new Promise<Record<string, unknown>>((resolve, reject) => {
        if (c.closedError) return reject(c.closedError);
        const t = setTimeout(() => reject(new QmpTimeoutError(`${c.label}: no QMP greeting within ${timeoutMs} ms`)), timeoutMs);
        c.greetingWaiter = {
          resolve: (g) => (clearTimeout(t), resolve(g)),
          reject: (e) => (clearTimeout(t), reject(e)),
        };
      });
      await c.execute('qmp_capabilities', undefined, { timeoutMs });
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** Registers an event listener; returns a function that removes it. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the first event named `name` that satisfies `match`, or rejects on timeout/close. */
  waitEvent(name: string, match: (e: QmpEvent) => boolean = () => true, timeoutMs = 30_000): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      if (this.closedError) return reject(this.closedError);
      const done = (): void => {
        clearTimeout(t);
        off();
        this.closeWaiters.delete(onClose);
      };
      const onClose = (e: Error): void => (done(), reject(e));
      const t = setTimeout(() => (done(), reject(new QmpTimeoutError(`${this.label}: no ${name} event within ${timeoutMs} ms`))), timeoutMs);
      const off = this.onEvent((e) => {
        if (e.event === name && match(e)) (done(), resolve(e));
      });
      this.closeWaiters.add(onClose);
    });
  }
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `vc-${this.nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject };
      const timeoutMs = opts.timeoutMs ?? 30_000;
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new QmpTimeoutError(`${this.label}: QMP ${command} got no reply within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      this.stream.write(JSON.stringify(msg) + '\n');
    });
  }

  /** Resolves when the connection has ended (QEMU quit or died, or close() was called). */
  closedPromise(): Promise<void> {
    if (this.closedError) return Promise.resolve();
    return new Promise((resolve) => this.closeWaiters.add(() => resolve()));
  }

  close(): void {
    this.fail(new QmpClosedError(`${this.label}: QMP connection closed by the client`));
    this.stream.destroy();
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // not QMP: ignore rather than tear the session down
      }
      this.dispatch(msg);
    }
  }

  private dispatch(msg: Record<string, unknown>): void {
    if ('QMP' in msg) {
      this.greetingWaiter?.resolve(msg.QMP as Record<string, unknown>);
      this.greetingWaiter = undefined;
      return;
    }
    if ('event' in msg) {
      const ev = msg as unknown as QmpEvent;
      for (const l of [...this.listeners]) l(ev);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id ? this.pending.get(id) : undefined;
    if (!p || !id) return;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if ('error' in msg) {
      const err = msg.error as { class?: string; desc?: string };
      p.reject(new QmpError(p.command, err.class ?? 'GenericError', err.desc ?? 'unknown error'));
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(e: Error): void {
    if (this.closedError) return;
    this.closedError = e;
    this.greetingWaiter?.reject(e);
    this.greetingWaiter = undefined;
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(e);
    }
    this.pending.clear();
    for (const w of [...this.closeWaiters]) w(e);
  }
}
