// applyObjects: create or update many manifests in the store (vcctl apply, the GitOps sync).
//
// - Live objects are read first: one list per kind and namespace for large applies (a single
//   round trip instead of one get per object), one get each for small ones.
// - Writes go out as store batches (atomic per batch; etcd caps a transaction at 128 operations by
//   default, so larger applies are split into chunks of `batchSize`), up to `pipeline` of them in
//   flight at once (each waiting on the store is a round trip; a fresh process on a busy machine
//   also waits to be scheduled after each), or one write per object with `batch: false`. A batch
//   that fails for good lets the batches in flight finish, starts no further one, and its error
//   (the first failing batch's, in input order) is thrown.
// - A write that lost a race with another writer (Conflict / AlreadyExists / NotFound because the
//   object changed after we read it) is planned again from a fresh read, a few times; a conflict
//   with a resourceVersion the manifest itself demands is reported, not retried.
// - dryRun 'client' plans against the live objects and writes nothing; 'server' also checks what
//   the store would refuse (stale resourceVersion in the manifest, objects being deleted).
// - Interrupting (opts.signal): every object is planned before the first write (a merged object
//   that is invalid fails the whole apply before anything is written); once the signal fires, the
//   batches (or the object) in flight finish and no further one starts: ApplyInterruptedError says
//   what was written and what was not. Batches start in input order, so what an interrupted
//   apply wrote is a prefix of the input (whole batches).

import { resolveKind } from '../kinds.js';
import {
  AlreadyExistsError, ConflictError, NotFoundError,
  type BatchOp, type Fence, type ObjectRef, type Store,
} from '../store/types.js';
import type { ApiObject } from '../types.js';
import { planApply, type ApplyAction, type ApplyPlan } from './plan-apply.js';

export interface ApplyOptions {
  dryRun?: 'client' | 'server';
  /** Recorded in the virtualinux.org/applied-by annotation. */
  fieldManager?: string;
  /** Write in store batches (default) or one write per object. */
  batch?: boolean;
  /** Operations per store batch (default 100: under etcd's default --max-txn-ops of 128). */
  batchSize?: number;
  /** Store batches in flight at once (default 4; 1 writes one batch after the other). */
  pipeline?: number;
  /** Leadership fence for every write (controllers). */
  fence?: Fence;
  /** Stops the apply between writes (e.g. on SIGINT): see ApplyInterruptedError. */
  signal?: AbortSignal;
  /**
   * The objects as validated and defaulted (api/input's Manifest.defaulted), in the order of
   * `objects`, when the caller has them: creates take them (planApply's `defaulted`).
   */
  defaulted?: ApiObject[];
}

/**
 * The apply was interrupted between two writes: `written` holds the results of the objects
 * written or unchanged (in the order of the input), `notWritten` the objects not written.
 * Nothing of `notWritten` is in the store (batches are atomic); applying again finishes the job.
 */
export class ApplyInterruptedError extends Error {
  constructor(
    readonly reason: string,
    readonly written: ApplyResult[],
    readonly notWritten: ObjectRef[],
  ) {
    super(`apply interrupted (${reason}): ${written.length} of ${written.length + notWritten.length} objects written or unchanged, ${notWritten.length} not written`);
    this.name = 'ApplyInterruptedError';
  }
}

export interface ApplyResult {
  ref: ObjectRef;
  action: ApplyAction;
  /** The stored object after the apply (for dry runs: what would be stored). */
  object: ApiObject;
  dryRun?: 'client' | 'server';
}

const MAX_ATTEMPTS = 5;
const PIPELINE = 4;
const PREFETCH_BY_LIST_FROM = 8;
const MAX_BATCH_BYTES = 1024 * 1024;

export function refOf(o: ApiObject): ObjectRef {
  return o.metadata.namespace !== undefined
    ? { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace }
    : { kind: o.kind, name: o.metadata.name };
}

function refKey(r: ObjectRef): string {
  return `${r.kind}/${r.namespace ?? ''}/${r.name}`;
}

/**
 * Applies validated manifests (namespaces filled in, e.g. from api/input's loadManifests).
 * Results come in the order of `objects`.
 */
export async function applyObjects(store: Store, objects: ApiObject[], opts: ApplyOptions = {}): Promise<ApplyResult[]> {
  const refs = objects.map(refOf);
  const live = await readLive(store, refs);
  const plan = (i: number, live: ApiObject | undefined): ApplyPlan =>
    planApply(objects[i], live, { fieldManager: opts.fieldManager, defaulted: opts.defaulted?.[i] });
  const plans = objects.map((_o, i) => plan(i, live.get(refKey(refs[i]))));
  if (opts.dryRun) {
    if (opts.dryRun === 'server') plans.forEach((p, i) => checkServerSide(p, live.get(refKey(refs[i])), refs[i]));
    return plans.map((p, i) => ({ ref: refs[i], action: p.action, object: p.object, dryRun: opts.dryRun }));
  }
  const results: (ApiObject | undefined)[] = plans.map((p) => (p.action === 'unchanged' ? p.object : undefined));
  const pending = () => plans.map((_p, i) => i).filter((i) => results[i] === undefined);
  const interrupted = async (): Promise<boolean> => {
    if (!opts.signal) return false;
    await new Promise((r) => setImmediate(r)); // let a signal handler run between two writes
    return opts.signal.aborted;
  };
  if (opts.batch === false) {
    for (const i of pending()) {
      if (await interrupted()) break;
      results[i] = await writeOne(store, refs[i], plans[i], (live) => plan(i, live), opts);
    }
  } else {
    const writeChunk = async (chunk: number[]): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          const written = await store.batch(chunk.map((i) => toOp(plans[i])), { fence: opts.fence });
          chunk.forEach((i, j) => (results[i] = written[j]));
          return;
        } catch (err) {
          if (!isRace(err) || attempt >= MAX_ATTEMPTS || chunk.some((i) => plans[i].requiredVersion)) throw err;
          const fresh = await readLive(store, chunk.map((i) => refs[i]), true);
          for (const i of chunk) plans[i] = plan(i, fresh.get(refKey(refs[i])));
          for (const i of chunk) if (plans[i].action === 'unchanged') results[i] = plans[i].object;
          chunk = chunk.filter((i) => plans[i].action !== 'unchanged');
          if (chunk.length === 0) return;
        }
      }
    };
    // Up to `pipeline` workers take the batches in input order; none starts one after a failure
    // or the signal, and every batch started is waited for.
    const todo = chunks(pending(), plans, opts.batchSize ?? 100);
    let next = 0;
    const failures: { at: number; err: unknown }[] = [];
    const worker = async (): Promise<void> => {
      while (next < todo.length && failures.length === 0) {
        if (await interrupted()) return;
        if (next >= todo.length || failures.length > 0) return;
        const at = next++;
        try {
          await writeChunk(todo[at]);
        } catch (err) {
          failures.push({ at, err });
        }
      }
    };
    const workers = Math.max(1, Math.min(opts.pipeline ?? PIPELINE, todo.length));
    await Promise.all(Array.from({ length: workers }, worker));
    if (failures.length > 0) throw failures.reduce((a, b) => (b.at < a.at ? b : a)).err;
  }
  const out = plans.map((p, i) => ({ ref: refs[i], action: p.action, object: results[i] as ApiObject }));
  if (results.some((r) => r === undefined)) {
    throw new ApplyInterruptedError(
      String(opts.signal?.reason ?? 'aborted'),
      out.filter((_r, i) => results[i] !== undefined),
      refs.filter((_r, i) => results[i] === undefined),
    );
  }
  return out;
}

async function writeOne(store: Store, ref: ObjectRef, first: ApplyPlan, replan: (live: ApiObject | undefined) => ApplyPlan, opts: ApplyOptions): Promise<ApiObject> {
  let plan = first;
  for (let attempt = 1; ; attempt++) {
    try {
      if (plan.action === 'unchanged') return plan.object;
      return plan.action === 'created'
        ? await store.create(plan.object, { fence: opts.fence })
        : await store.update(plan.object, { fence: opts.fence });
    } catch (err) {
      if (!isRace(err) || attempt >= MAX_ATTEMPTS || plan.requiredVersion) throw err;
      plan = replan(await store.tryGet(ref));
    }
  }
}

function toOp(p: ApplyPlan): BatchOp {
  return p.action === 'created' ? { op: 'create', object: p.object } : { op: 'update', object: p.object };
}

function isRace(err: unknown): boolean {
  return err instanceof ConflictError || err instanceof AlreadyExistsError || err instanceof NotFoundError;
}

/** Splits indexes into batches of at most `size` operations and about MAX_BATCH_BYTES of JSON. */
function chunks(indexes: number[], plans: ApplyPlan[], size: number): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let bytes = 0;
  for (const i of indexes) {
    const b = JSON.stringify(plans[i].object).length;
    if (cur.length > 0 && (cur.length >= size || bytes + b > MAX_BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(i);
    bytes += b;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** What a real write would refuse, checked without writing (--dry-run=server). */
function checkServerSide(plan: ApplyPlan, live: ApiObject | undefined, ref: ObjectRef): void {
  const what = `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
  if (plan.requiredVersion && plan.requiredVersion !== live?.metadata.resourceVersion) {
    throw new ConflictError(
      live
        ? `${what}: the manifest demands resourceVersion ${plan.requiredVersion} but the store has ${live.metadata.resourceVersion}; get the object again or drop metadata.resourceVersion`
        : `${what}: the manifest demands resourceVersion ${plan.requiredVersion} but the object does not exist`,
    );
  }
  if (live?.metadata.deletionTimestamp && plan.action === 'configured') {
    throw new ConflictError(`${what} is being deleted (since ${live.metadata.deletionTimestamp}); wait for it to go, then apply again`);
  }
}

/** Live objects by ref key: one list per kind+namespace when there are many refs, else gets. */
async function readLive(store: Store, refs: ObjectRef[], forceGets = false): Promise<Map<string, ApiObject>> {
  const out = new Map<string, ApiObject>();
  if (refs.length >= PREFETCH_BY_LIST_FROM && !forceGets) {
    const wanted = new Set(refs.map(refKey));
    const groups = new Map<string, ObjectRef>();
    for (const r of refs) groups.set(`${r.kind}/${r.namespace ?? ''}`, r);
    for (const r of groups.values()) {
      const namespaced = resolveKind(r.kind)?.namespaced ?? r.namespace !== undefined;
      const { items } = await store.list(r.kind, namespaced ? { namespace: r.namespace } : {});
      for (const o of items) {
        const k = refKey(refOf(o));
        if (wanted.has(k)) out.set(k, o);
      }
    }
    return out;
  }
  await Promise.all(refs.map(async (r) => {
    const o = await store.tryGet(r);
    if (o) out.set(refKey(r), o);
  }));
  return out;
}
