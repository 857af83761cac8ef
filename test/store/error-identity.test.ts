// The store's errors across two copies of the store modules: a test file (loaded as CommonJS by
// mocha through tsx) reaching a backend that openStore imports through the ESM loader gets its
// errors from a second copy of api/store/types.ts. `instanceof` must still answer by class.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../api/store/open-store.js';
import { ConflictError, NotFoundError, StoreError, type Store } from '../../api/store/types.js';
import { updateWithRetry } from '../../api/finalizers.js';
import { API_VERSION, type ApiObject } from '../../api/types.js';

describe('store errors across two copies of the store modules', () => {
  let dir: string;
  let store: Store;
  const ref = { kind: 'OSTemplate', name: 'img' };
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-err-copies-'));
    store = await openStore(`file:${join(dir, 'store.db')}`);
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a conflict from the other copy is a ConflictError and a StoreError, and nothing else', async () => {
    const first = await store.create({ apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name: 'img' }, spec: { image: 'a' } } as ApiObject);
    await store.update({ ...first, spec: { image: 'b' } });
    const err = await store.update({ ...first, spec: { image: 'c' } }).then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err, 'the stale write is refused');
    // The case this is about: the error's class is not the one this file imported.
    assert.notEqual(err.constructor, ConflictError, 'the backend came from another copy of the store modules');
    assert.ok(err instanceof ConflictError);
    assert.ok(err instanceof StoreError);
    assert.ok(!(err instanceof NotFoundError));
    const missing = await store.get(({ kind: 'OSTemplate', name: 'none' })).then(() => undefined, (e: unknown) => e);
    assert.ok(missing instanceof NotFoundError && !(missing instanceof ConflictError));
    // Only the store's own: an Error merely named so, or not an Error at all, is not one.
    const named = new Error('x');
    named.name = 'ConflictError';
    assert.ok(!(named instanceof ConflictError));
    assert.ok(!({ name: 'ConflictError' } as unknown instanceof ConflictError));
    assert.ok(new ConflictError('same copy') instanceof ConflictError);
  });

  it('updateWithRetry retries a conflict from the other copy and writes', async () => {
    const first = await store.create({ apiVersion: API_VERSION, kind: 'OSTemplate', metadata: { name: 'img' }, spec: { image: 'a' } } as ApiObject);
    await store.update({ ...first, spec: { image: 'b' } });
    // Starting from the stale copy: the first write conflicts, the second goes over what is stored.
    const out = await updateWithRetry<ApiObject>(store, ref, (o) => ({ ...o, metadata: { ...o.metadata, labels: { resized: 'yes' } } }), 3, first);
    const stored = await store.get<ApiObject & { spec: { image: string } }>(ref);
    assert.equal(stored.metadata.labels?.resized, 'yes');
    assert.equal(stored.spec.image, 'b', 'written over the stored version, not the stale one');
    assert.equal(out?.metadata.resourceVersion, stored.metadata.resourceVersion);
  });
});
