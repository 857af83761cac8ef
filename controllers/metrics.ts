// Prometheus metrics of a vc-manager (prom-client): queue depth, reconcile duration and errors per
// controller, store request latency per operation, leadership. One registry per manager so tests
// can run several managers in one process.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Store } from '../api/store/types.js';

export type ReconcileResultLabel = 'success' | 'requeue' | 'error' | 'terminal' | 'timeout';

export class ManagerMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration: Histogram<'controller' | 'result'>;
  readonly reconcileErrors: Counter<'controller' | 'type'>;
  readonly storeLatency: Histogram<'op'>;
  /** Store requests made by each controller's reconciles and status writes, by operation. */
  readonly storeRequests: Counter<'controller' | 'op'>;
  readonly leader: Gauge;
  readonly heapGrowingPercent: Gauge;
  private readonly depthSources = new Map<string, () => number>();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    const sources = this.depthSources;
    new Gauge({
      name: 'vcm_workqueue_depth',
      help: 'Keys waiting in a controller work queue (ready plus delayed).',
      labelNames: ['controller'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [c, f] of sources) this.set({ controller: c }, f());
      },
    });
    this.reconcileDuration = new Histogram({
      name: 'vcm_reconcile_duration_seconds',
      help: 'Duration of reconcile calls by controller and outcome.',
      labelNames: ['controller', 'result'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers: [this.registry],
    });
    this.reconcileErrors = new Counter({
      name: 'vcm_reconcile_errors_total',
      help: 'Reconciles that failed, by controller and type (error, terminal, timeout).',
      labelNames: ['controller', 'type'],
      registers: [this.registry],
    });
    this.storeLatency = new Histogram({
      name: 'vcm_store_request_duration_seconds',
      help: 'Latency of store requests made by the manager, by operation.',
      labelNames: ['op'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5],
      registers: [this.registry],
    });
    this.storeRequests = new Counter({
      name: 'vcm_store_requests_total',
      help: 'Store requests made by a controller (its reconciles and condition writes), by operation.',
      labelNames: ['controller', 'op'],
      registers: [this.registry],
    });
    this.leader = new Gauge({
      name: 'vcm_leader',
      help: '1 while this manager is the leader, else 0.',
      registers: [this.registry],
    });
    this.heapGrowingPercent = new Gauge({
      name: 'vcm_heap_growing_percent',
      help: 'The heap growth the memory governor asks of V8 past the live set (0: V8\'s own; vc-manager --memory-target-mib).',
      registers: [this.registry],
    });
  }

  /** Registers a live queue-depth reading for a controller (replaces an earlier one). */
  setDepthSource(controller: string, f: (() => number) | undefined): void {
    if (f) this.depthSources.set(controller, f);
    else this.depthSources.delete(controller);
  }
}

const TIMED = new Set(['create', 'get', 'tryGet', 'list', 'update', 'updateStatus', 'delete', 'batch', 'revision']);

/** Wraps a store so every request (an operation of TIMED) goes through `around(op, call)`. */
function wrapRequests(store: Store, around: (op: string, call: () => Promise<unknown>) => Promise<unknown>): Store {
  return new Proxy(store, {
    get(target, prop, _receiver) {
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => Promise<unknown>;
      if (typeof prop !== 'string' || !TIMED.has(prop)) return fn.bind(target);
      return (...args: unknown[]) => around(prop, () => fn.apply(target, args));
    },
  });
}

/** Wraps a store so every request is counted into `counter` under `controller` and its operation name. */
export function countStore(store: Store, counter: Counter<'controller' | 'op'>, controller: string): Store {
  return wrapRequests(store, (op, call) => {
    counter.inc({ controller, op });
    return call();
  });
}

/** Wraps a store so every request is timed into `hist` under its operation name. */
export function instrumentStore(store: Store, hist: Histogram<'op'>): Store {
  return wrapRequests(store, (op, call) => {
    const end = hist.startTimer({ op });
    return call().finally(() => end());
  });
}
