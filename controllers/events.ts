// Events: what happened to an object, as Event objects (kind Event, spec = api/types.ts EventSpec).
//
// - De-duplicated: one Event per (object, type, reason, message); its name is derived from them, so
//   every manager (and every restart) finds the same Event and bumps count and lastTimestamp.
// - Rate-limited: record() never blocks or throws; it aggregates into a pending entry, and one
//   writer drains the entries through a token bucket, so a hot loop of the same event costs one
//   write per bucket token, not one per call.
// - Bounded: at most maxPending distinct events wait to be written (default 1,000, as client-go's
//   broadcaster queue); a new one beyond that is dropped and counted (a repeat of one waiting is
//   still aggregated). A burst of 10,000 VMs queued Events faster than the 5/s they are written at,
//   and held them all in memory for half an hour (hack/bench-scale).
// - Expiring: expireEvents() deletes Events whose lastTimestamp is more than an hour old; the
//   manager runs it periodically while it leads.
// - Written through the store it is given (the manager passes the fenced one): a deposed leader
//   records nothing.

import { createHash } from 'node:crypto';
import { API_VERSION, type EventObject, type EventSpec, type ObjectMeta } from '../api/types.js';
import { AlreadyExistsError, ConflictError, FencedError, type Store } from '../api/store/types.js';
import { DEFAULT_NAMESPACE } from '../api/kinds.js';
import { type Clock, realClock } from './clock.js';
import { TokenBucketRateLimiter } from './rate-limiter.js';
import type { EventRecorder, Logger } from './types.js';

export const EVENT_TTL_MS = 60 * 60_000;

type Involved = { kind: string; metadata: Pick<ObjectMeta, 'name' | 'namespace' | 'uid'> };

interface PendingEvent {
  name: string;
  namespace: string;
  involvedObject: EventSpec['involvedObject'];
  type: EventSpec['type'];
  reason: string;
  message: string;
  count: number;
  first: string;
  last: string;
}

/** The Event's name: a DNS-1123 label from the object name plus a hash of what makes it unique. */
export function eventName(
  involved: EventSpec['involvedObject'],
  type: string,
  reason: string,
  message: string,
): string {
  const h = createHash('sha256')
    .update([involved.kind, involved.namespace ?? '', involved.name, involved.uid ?? '', type, reason, message].join('\u0000'))
    .digest('hex')
    .slice(0, 16);
  const base = involved.name.slice(0, 46).replace(/[^a-z0-9-]/g, '-').replace(/-+$/, '');
  return `${base || 'event'}-${h}`;
}

export interface StoreEventRecorderOptions {
  /** Written into spec.source (the manager identity or controller name). */
  source: string;
  clock?: Clock;
  log?: Logger;
  /** Event writes per second, and burst. Default 5 / 25. */
  qps?: number;
  burst?: number;
  /** Distinct events waiting to be written at most; a new one beyond is dropped. Default 1,000. */
  maxPending?: number;
}

export const DEFAULT_MAX_PENDING_EVENTS = 1000;

export class StoreEventRecorder implements EventRecorder {
  private readonly pending = new Map<string, PendingEvent>();
  private readonly bucket: TokenBucketRateLimiter<string>;
  private readonly clock: Clock;
  private draining: Promise<void> | undefined;
  private stopped = false;
  /** Event writes that reached the store (for tests and metrics). */
  written = 0;
  /** Events dropped because maxPending were waiting already. */
  dropped = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: StoreEventRecorderOptions,
  ) {
    this.clock = opts.clock ?? realClock;
    this.bucket = new TokenBucketRateLimiter(opts.qps ?? 5, opts.burst ?? 25, this.clock);
  }

  record(obj: Involved, type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (this.stopped) return;
    const involvedObject: EventSpec['involvedObject'] = { kind: obj.kind, name: obj.metadata.name };
    if (obj.metadata.namespace) involvedObject.namespace = obj.metadata.namespace;
    if (obj.metadata.uid) involvedObject.uid = obj.metadata.uid;
    const name = eventName(involvedObject, type, reason, message);
    const namespace = obj.metadata.namespace ?? DEFAULT_NAMESPACE;
    const now = new Date().toISOString();
    const id = `${namespace}/${name}`;
    const p = this.pending.get(id);
    if (p) {
      p.count++;
      p.last = now;
    } else if (this.pending.size >= (this.opts.maxPending ?? DEFAULT_MAX_PENDING_EVENTS)) {
      if (this.dropped++ % 1000 === 0) {
        this.opts.log?.warn({ reason, dropped: this.dropped, pending: this.pending.size }, 'event dropped: too many events waiting to be written');
      }
      return;
    } else {
      this.pending.set(id, { name, namespace, involvedObject, type, reason, message, count: 1, first: now, last: now });
    }
    this.draining ??= this.drain().finally(() => { this.draining = undefined; });
  }

  /** Distinct events waiting to be written. */
  pendingCount(): number {
    return this.pending.size;
  }

  /** Resolves when every event recorded so far has been written (or dropped). */
  async flush(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /** Drops pending events and records nothing more. */
  stop(): void {
    this.stopped = true;
    this.pending.clear();
  }

  private async drain(): Promise<void> {
    while (!this.stopped && this.pending.size > 0) {
      const wait = this.bucket.when('');
      if (wait > 0) await new Promise<void>((r) => this.clock.setTimer(r, wait));
      const first = this.pending.entries().next().value;
      if (!first) break;
      const [id, ev] = first;
      this.pending.delete(id);
      try {
        await this.write(ev);
        this.written++;
      } catch (err) {
        if (err instanceof FencedError) {
          this.pending.clear();
          return;
        }
        this.opts.log?.warn({ event: ev.name, reason: ev.reason, err: String(err) }, 'event not recorded');
      }
    }
  }

  private async write(ev: PendingEvent): Promise<void> {
    const ref = { kind: 'Event', namespace: ev.namespace, name: ev.name };
    for (let attempt = 0; ; attempt++) {
      try {
        const existing = await this.store.tryGet<EventObject>(ref);
        if (existing?.spec) {
          const spec: EventSpec = { ...existing.spec, count: existing.spec.count + ev.count, lastTimestamp: ev.last };
          await this.store.update<EventObject>({ ...existing, spec });
        } else {
          const spec: EventSpec = {
            involvedObject: ev.involvedObject, type: ev.type, reason: ev.reason, message: ev.message,
            count: ev.count, firstTimestamp: ev.first, lastTimestamp: ev.last, source: this.opts.source,
          };
          await this.store.create<EventObject>({
            apiVersion: API_VERSION, kind: 'Event', metadata: { name: ev.name, namespace: ev.namespace }, spec,
          });
        }
        return;
      } catch (err) {
        const retriable = err instanceof ConflictError || err instanceof AlreadyExistsError;
        if (!retriable || attempt >= 3) throw err;
      }
    }
  }
}

/** Deletes Events whose lastTimestamp is older than ttlMs. Returns how many it deleted. */
export async function expireEvents(store: Store, ttlMs = EVENT_TTL_MS, now = Date.now()): Promise<number> {
  const { items } = await store.list<EventObject>('Event');
  let n = 0;
  for (const ev of items) {
    const last = Date.parse(ev.spec?.lastTimestamp ?? ev.metadata.creationTimestamp ?? '');
    if (Number.isNaN(last) || now - last <= ttlMs) continue;
    try {
      await store.delete({ kind: 'Event', namespace: ev.metadata.namespace, name: ev.metadata.name }, {
        resourceVersion: ev.metadata.resourceVersion,
      });
      n++;
    } catch (err) {
      if (err instanceof FencedError) throw err;
      // Updated or deleted meanwhile: the next pass decides again.
    }
  }
  return n;
}
