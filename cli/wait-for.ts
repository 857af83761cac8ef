// Waiting for an object to reach a state: read it, then watch it from the read's revision, and
// test the predicate on every version (level-triggered: a missed event cannot make it hang, since
// each event carries the whole object). Used by `wait`, `delete --wait` and other commands.

import { CompactedError, type ObjectRef, type Store } from '../api/store/types.js';
import type { ApiObject } from '../api/types.js';

export class WaitTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WaitTimeoutError';
  }
}

/**
 * Resolves with the first state (undefined = absent) for which `done` is true. Rejects with
 * WaitTimeoutError after timeoutMs, and with the error `fail` returns for a state (checked after
 * `done`: e.g. a NotFoundError when the object is absent and only its deletion may end the wait).
 */
export async function waitForObject(
  store: Store,
  ref: ObjectRef,
  done: (obj: ApiObject | undefined) => boolean,
  timeoutMs: number,
  what = 'the condition',
  fail: (obj: ApiObject | undefined) => Error | undefined = () => undefined,
): Promise<ApiObject | undefined> {
  const deadline = Date.now() + timeoutMs;
  const settled = (o: ApiObject | undefined): boolean => {
    if (done(o)) return true;
    const err = fail(o);
    if (err) throw err;
    return false;
  };
  for (;;) {
    const revision = await store.revision();
    const current = await store.tryGet(ref);
    if (settled(current)) return current;
    try {
      return await watchUntil(store, ref, settled, revision + 1, deadline, what);
    } catch (err) {
      if (!(err instanceof CompactedError)) throw err; // history gone: read again
    }
  }
}

function watchUntil(
  store: Store, ref: ObjectRef, done: (o: ApiObject | undefined) => boolean,
  fromRevision: number, deadline: number, what: string,
): Promise<ApiObject | undefined> {
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (fn: () => void): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      watch.close();
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(new WaitTimeoutError(
      `timed out waiting for ${what} on ${ref.kind.toLowerCase()}/${ref.name}`,
    ))), Math.max(0, deadline - Date.now()));
    const watch = store.watch(ref.kind, {
      fromRevision,
      ...(ref.namespace !== undefined ? { namespace: ref.namespace } : {}),
    }, {
      onEvent(ev) {
        if (ev.object.metadata.name !== ref.name) return;
        const state = ev.type === 'DELETED' ? undefined : ev.object;
        try {
          if (done(state)) finish(() => resolve(state));
        } catch (err) {
          finish(() => reject(err));
        }
      },
      onError(err) {
        finish(() => reject(err));
      },
    });
  });
}
