// The dashboard's live feed: Server-Sent Events from the informers' watch of the store. A client
// first gets one `snapshot` (every object of the shown kinds, the newest Events only), then a
// `change` per object that changed as the informers deliver it. Nothing polls: the store's watch
// drives the informers, and each change reaches every connected browser in the same tick.
//
// Contract:
// - A client attaches once every shown kind's informer has synced; its snapshot and its place in
//   the client set are taken in one tick, so no change falls between them.
// - A change whose projection (view-model.ts) equals the last one sent is not sent again.
// - A client that does not read (its socket buffers more than maxBufferedBytes) is disconnected:
//   its EventSource reconnects and starts again from a fresh snapshot.
// - Nothing is done for a feed nobody watches: the shown kinds' informers are asked for (the
//   Event one is the dashboard's alone, so it is made) when the first client attaches, the feed
//   listens to them only while a client is attached or attaching, and it keeps what it last sent
//   only for those clients (at 10,000 VMs every status write was projected and kept as JSON, and
//   every Event watched, for a page nobody had open).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiObject, EventObject } from '../api/types.js';
import type { Informer } from '../controllers/informer.js';
import { cacheKey } from '../controllers/informer.js';
import { DASHBOARD_KINDS, latestEvents, viewOf, type DashboardKind, type ViewObject } from './view-model.js';

/** Where the informers come from: the manager's SharedCache (it creates and starts them on first use). */
export interface InformerSource {
  informer<T extends ApiObject = ApiObject>(kind: string): Informer<T>;
}

export interface LiveFeedOptions {
  /** A comment line this often keeps idle connections open through proxies; default 15 s. */
  heartbeatMs?: number;
  /** Default 4 MiB. */
  maxBufferedBytes?: number;
  /** Headers every response carries (the security headers of server.ts). */
  headers?: Record<string, string>;
}

interface Client {
  res: ServerResponse;
}

export class LiveFeed {
  private readonly clients = new Set<Client>();
  private readonly lastSent = new Map<string, string>();
  private readonly removers: (() => void)[] = [];
  private heartbeat?: NodeJS.Timeout;
  private informers?: Map<DashboardKind, Informer>;
  /** Clients waiting for the informers' sync: they keep the feed listening too. */
  private attaching = 0;

  constructor(private readonly source: InformerSource, private readonly opts: LiveFeedOptions = {}) {}

  start(): void {
    this.heartbeat = setInterval(() => this.broadcast(': keepalive\n\n'), this.opts.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  stop(): void {
    this.unlisten();
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Whether the feed listens to the informers now (a client attached or attaching). */
  get listening(): boolean {
    return this.removers.length > 0;
  }

  /** The shown kinds' informers, asked for on first use, and listened to from now on. */
  private listen(): Map<DashboardKind, Informer> {
    this.informers ??= new Map(DASHBOARD_KINDS.map((k) => [k, this.source.informer(k)] as const));
    if (!this.listening) {
      for (const [kind, inf] of this.informers) {
        this.removers.push(inf.addHandlers({
          onAdd: (o) => this.changed(kind, 'put', o),
          onUpdate: (_old, o) => this.changed(kind, 'put', o),
          onDelete: (o) => this.changed(kind, 'delete', o),
        }));
      }
    }
    return this.informers;
  }

  private unlisten(): void {
    for (const r of this.removers.splice(0)) r();
    this.lastSent.clear();
  }

  /** A client left (or never got in): with nobody left, stop listening. */
  private left(): void {
    if (this.clients.size === 0 && this.attaching === 0) this.unlisten();
  }

  /** Serves one EventSource connection (GET /api/events). */
  async attach(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.writeHead(200, {
      ...this.opts.headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n\n');
    const abort = new AbortController();
    req.once('close', () => abort.abort());
    const informers = this.listen();
    this.attaching++;
    try {
      await Promise.all([...informers.values()].map((i) => i.waitForSync(abort.signal)));
    } catch {
      res.end();
      return;
    } finally {
      this.attaching--;
    }
    if (abort.signal.aborted || !this.listening) {
      // Gone while waiting, or the feed was stopped meanwhile.
      this.left();
      res.end();
      return;
    }
    const client: Client = { res };
    const objects: Record<string, ViewObject[]> = {};
    for (const [kind, inf] of informers) {
      const items = kind === 'Event' ? latestEvents(inf.list() as EventObject[]) : inf.list();
      objects[kind] = items.map((o) => {
        const v = viewOf(kind, o);
        // What this client is sent is the newest of each object: a change equal to it is not sent.
        this.lastSent.set(`${kind}/${cacheKey(o.metadata)}`, JSON.stringify(v));
        return v;
      });
    }
    this.send(client, 'snapshot', { objects });
    this.clients.add(client);
    req.once('close', () => {
      this.clients.delete(client);
      this.left();
    });
  }

  private changed(kind: DashboardKind, op: 'put' | 'delete', o: ApiObject): void {
    if (this.clients.size === 0) return; // an attaching client's snapshot is taken after this
    const key = `${kind}/${cacheKey(o.metadata)}`;
    const view = viewOf(kind, o);
    if (op === 'delete') {
      this.lastSent.delete(key);
    } else {
      const text = JSON.stringify(view);
      if (this.lastSent.get(key) === text) return;
      this.lastSent.set(key, text);
    }
    const frame = this.frame('change', { op, object: view });
    this.broadcast(frame);
  }

  private frame(event: string, data: unknown): string {
    // JSON.stringify escapes line breaks inside strings: the data is one line, as SSE requires.
    return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private send(c: Client, event: string, data: unknown): void {
    this.write(c, this.frame(event, data));
  }

  private broadcast(frame: string): void {
    for (const c of this.clients) this.write(c, frame);
  }

  private write(c: Client, frame: string): void {
    if (c.res.writableLength > (this.opts.maxBufferedBytes ?? 4 * 1024 * 1024)) {
      this.clients.delete(c);
      c.res.destroy();
      return;
    }
    c.res.write(frame);
  }
}
