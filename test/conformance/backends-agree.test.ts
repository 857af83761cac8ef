// Differential test: random sequences of creates, updates (current, stale or unconditional
// resourceVersion), status updates, deletes, finalizer removal and batches, applied to SqliteStore
// and EtcdStore side by side. After every step both must give the same outcome (the same error
// class, or the same object) and hold the same objects. uids, timestamps and absolute revisions
// are normalised: revisions are compared relative to the store's revision at the start of a run.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import type { ApiObject } from '../../api/types.js';
import type { BatchOp, Store } from '../../api/store/types.js';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';

const NAMES = ['a', 'b', 'c'];
const NAMESPACES = ['n1', 'n2'];

/** An operation in backend-neutral terms: `rv` is 'current', 'none' or a relative revision. */
type Step =
  | { t: 'create'; name: string; ns: string; size: number; finalizers: boolean; label?: string }
  | { t: 'update'; name: string; ns: string; size: number; rv: 'current' | 'none' | number; label?: string; dropFinalizers: boolean }
  | { t: 'status'; name: string; ns: string; phase: string; rv: 'current' | 'none' | number }
  | { t: 'delete'; name: string; ns: string; rv: 'current' | 'none' | number }
  | { t: 'batch'; steps: Step[] };

const name = fc.constantFrom(...NAMES);
const ns = fc.constantFrom(...NAMESPACES);
const rv = fc.oneof(fc.constant('current' as const), fc.constant('none' as const), fc.integer({ min: 0, max: 6 }));
const label = fc.option(fc.constantFrom('x', 'y'), { nil: undefined });
const single: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant('create' as const), name, ns, size: fc.integer({ min: 1, max: 3 }), finalizers: fc.boolean(), label }),
  fc.record({ t: fc.constant('update' as const), name, ns, size: fc.integer({ min: 1, max: 3 }), rv, label, dropFinalizers: fc.boolean() }),
  fc.record({ t: fc.constant('status' as const), name, ns, phase: fc.constantFrom('A', 'B'), rv }),
  fc.record({ t: fc.constant('delete' as const), name, ns, rv }),
);
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: single },
  { weight: 1, arbitrary: fc.array(single, { minLength: 1, maxLength: 3 }).map((steps) => ({ t: 'batch' as const, steps })) },
);

/** Runs steps on one store and records a normalised trace. */
async function trace(store: Store, steps: Step[]): Promise<unknown[]> {
  const base = await store.revision();
  const uids = new Map<string, number>();
  const norm = (o: ApiObject) => {
    const m = o.metadata;
    if (m.uid && !uids.has(m.uid)) uids.set(m.uid, uids.size);
    return {
      kind: o.kind, name: m.name, namespace: m.namespace, labels: m.labels, finalizers: m.finalizers,
      uid: m.uid === undefined ? undefined : uids.get(m.uid), generation: m.generation,
      terminating: m.deletionTimestamp !== undefined, rv: Number(m.resourceVersion) - base,
      spec: o.spec, status: o.status,
    };
  };
  const toOp = async (s: Exclude<Step, { t: 'batch' }>): Promise<BatchOp> => {
    const ref = { kind: 'Widget', name: s.name, namespace: s.ns };
    const current = await store.tryGet(ref);
    const version = s.t === 'create' ? undefined
      : s.rv === 'current' ? current?.metadata.resourceVersion
      : s.rv === 'none' ? undefined : String(base + s.rv);
    const meta = { name: s.name, namespace: s.ns };
    switch (s.t) {
      case 'create':
        return { op: 'create', object: { apiVersion: 'v1', kind: 'Widget', metadata: { ...meta, ...(s.finalizers ? { finalizers: ['f'] } : {}), ...(s.label ? { labels: { l: s.label } } : {}) }, spec: { size: s.size } } };
      case 'update': {
        const finalizers = s.dropFinalizers ? [] : current?.metadata.finalizers;
        return { op: 'update', object: { apiVersion: 'v1', kind: 'Widget', metadata: { ...meta, resourceVersion: version, ...(finalizers ? { finalizers } : {}), ...(s.label ? { labels: { l: s.label } } : {}) }, spec: { size: s.size } } };
      }
      case 'status':
        return { op: 'updateStatus', object: { apiVersion: 'v1', kind: 'Widget', metadata: { ...meta, resourceVersion: version }, status: { phase: s.phase } } };
      case 'delete':
        return { op: 'delete', ref, resourceVersion: version };
    }
  };
  const out: unknown[] = [];
  for (const s of steps) {
    const ops = s.t === 'batch' ? await Promise.all(s.steps.map((x) => toOp(x as Exclude<Step, { t: 'batch' }>))) : [await toOp(s)];
    try {
      const res = await store.batch(ops);
      out.push({ ok: res.map(norm) });
    } catch (err) {
      out.push({ error: (err as Error).name });
    }
    const list = await store.list('Widget');
    out.push({
      revision: (await store.revision()) - base,
      items: list.items.map(norm).sort((x, y) => `${x.namespace}/${x.name}`.localeCompare(`${y.namespace}/${y.name}`)),
    });
  }
  return out;
}

describe('SqliteStore and EtcdStore agree on random operation sequences', function () {
  this.timeout(300_000);
  let etcd: EtcdHarness | undefined;
  let dir: string;
  before(async () => {
    etcd = await startEtcd();
    dir = mkdtempSync(join(tmpdir(), 'vl-agree-'));
  });
  after(async () => {
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same outcome and state after every step', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 20 }), async (steps) => {
        run++;
        const sqlite = new SqliteStore(join(dir, `run-${run}.db`));
        const etcdStore = await EtcdStore.connect({ endpoints: etcd!.endpoints, prefix: `/agree-${randomBytes(4).toString('hex')}` });
        try {
          const [a, b] = [await trace(sqlite, steps), await trace(etcdStore, steps)];
          assert.deepEqual(b, a);
        } finally {
          await sqlite.close();
          await etcdStore.close();
        }
      }),
      { numRuns: 40 },
    );
  });
});
