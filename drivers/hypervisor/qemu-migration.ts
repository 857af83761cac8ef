// QEMU's migration machinery over QMP, as QemuDriver uses it for suspend (migration to a file),
// resume (migrate-incoming from a file) and live migration: the migration states, waiting for a
// migration to end or an incoming one to load (woken by QEMU's MIGRATION/RESUME events, polled
// with query-migrate / query-status), and the progress report. No process or file handling here.

import { setTimeout as sleep } from 'node:timers/promises';
import type { QmpClient } from './qmp-client.js';
import { HypervisorError, type MigrationProgress } from './types.js';

/** query-migrate statuses of a migration still under way. */
export const MIGRATION_ACTIVE = new Set(['setup', 'active', 'pre-switchover', 'device', 'postcopy-active', 'wait-unplug', 'cancelling']);

export interface QueryMigrate {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: {
    transferred?: number; remaining?: number; total?: number;
    'dirty-pages-rate'?: number; 'page-size'?: number; mbps?: number; 'dirty-sync-count'?: number;
  };
  'socket-address'?: Array<{ type: string; host?: string; port?: string }>;
}

/**
 * Remembers whether one of `names` was announced since the last wait(), so a poll loop that
 * registers it before its first query cannot miss an event that arrives with (or just after) a
 * query's reply: wait(ms) returns at once if one came meanwhile, else on the next one or after ms.
 */
class EventLatch implements Disposable {
  private fired = false;
  private wake?: () => void;
  private readonly off: () => void;
  /** Every event of `names` announced since the latch was made. */
  readonly seen = new Set<string>();

  constructor(q: QmpClient, names: readonly string[]) {
    this.off = q.onEvent((e) => {
      if (!names.includes(e.event)) return;
      this.seen.add(e.event);
      this.fired = true;
      this.wake?.();
    });
  }

  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake = undefined;
        this.fired = false;
        resolve();
      };
      const t = setTimeout(done, this.fired ? 0 : ms);
      this.wake = done;
    });
  }

  [Symbol.dispose](): void {
    this.off();
  }
}

/**
 * Polls query-migrate until the migration ends (or `timeoutMs`: status 'timeout'). Each MIGRATION
 * event (the `events` capability, see enableMigrationEvents) wakes the loop at once, so the end is
 * seen when QEMU announces it; the poll itself is what reports progress.
 */
export async function pollMigration(q: QmpClient, timeoutMs: number, onPoll?: (m: QueryMigrate) => void): Promise<QueryMigrate> {
  const deadline = Date.now() + timeoutMs;
  using changed = new EventLatch(q, ['MIGRATION']);
  for (;;) {
    let m = await q.execute<QueryMigrate>('query-migrate');
    // QEMU announces `completed` a moment before it has computed the totals (0 until then): wait for them.
    for (let i = 0; m.status === 'completed' && !m['total-time'] && i < 100; i++) {
      await sleep(2);
      m = await q.execute<QueryMigrate>('query-migrate');
    }
    onPoll?.(m);
    if (m.status && !MIGRATION_ACTIVE.has(m.status) && m.status !== 'none') return m;
    if (Date.now() > deadline) return { ...m, status: 'timeout' };
    await changed.wait(50);
  }
}

/** Makes QEMU announce each migration state change as a MIGRATION event (before migrate / migrate-incoming). */
export async function enableMigrationEvents(q: QmpClient): Promise<void> {
  await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
}

/**
 * Waits until an incoming migration of `name` on `node` has loaded, then makes sure the domain
 * runs. A RESUME event (QEMU started the loaded VM by itself) ends the wait at once: right after
 * it the target's monitor answers late (tens of ms under load), and the answer would only say so.
 */
export async function runWhenLoaded(q: QmpClient, node: string, name: string, timeoutMs: number): Promise<void> {
  if ((await waitIncomingDone(q, node, name, timeoutMs)) === 'resumed') return;
  const st = await q.execute<{ running: boolean }>('query-status');
  if (!st.running) await q.execute('cont');
}

/** Waits until an incoming migration has finished loading (the VM left `inmigrate`), or QEMU announced that it runs. */
async function waitIncomingDone(q: QmpClient, node: string, name: string, timeoutMs: number): Promise<'resumed' | 'loaded'> {
  const deadline = Date.now() + timeoutMs;
  // RESUME: the target runs; MIGRATION: its incoming side changed state (loaded or failed).
  using changed = new EventLatch(q, ['RESUME', 'MIGRATION', 'STOP']);
  // A query sent while the target loads is answered only after it (its monitor waits): RESUME
  // does not wait for that answer (left unread; the connection closes after).
  let resume!: () => void;
  const resumed = new Promise<'resumed'>((res) => (resume = () => res('resumed')));
  const off = q.onEvent((e) => e.event === 'RESUME' && resume());
  try {
    for (;;) {
      if (changed.seen.has('RESUME')) return 'resumed';
      const reply = q.execute<{ status: string }>('query-status');
      reply.catch(() => undefined);
      const st = await Promise.race([reply, resumed]);
      if (st === 'resumed') return st;
      if (st.status !== 'inmigrate') return 'loaded';
      if (Date.now() > deadline) throw new HypervisorError(`${node}: incoming state of ${name} not loaded within ${timeoutMs} ms`);
      await changed.wait(50);
    }
  } finally {
    off();
  }
}

/** A query-migrate reply as the contract's MigrationProgress. */
export function migrationProgress(p: QueryMigrate): MigrationProgress {
  return {
    status: p.status ?? 'unknown',
    transferredBytes: p.ram?.transferred ?? 0,
    remainingBytes: p.ram?.remaining ?? 0,
    totalBytes: p.ram?.total ?? 0,
    dirtyBytesPerSec: (p.ram?.['dirty-pages-rate'] ?? 0) * (p.ram?.['page-size'] ?? 4096),
    throughputBytesPerSec: Math.round(((p.ram?.mbps ?? 0) * 1e6) / 8),
    passes: p.ram?.['dirty-sync-count'] ?? 0,
  };
}
