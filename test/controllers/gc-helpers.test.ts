import assert from 'node:assert/strict';
import { API_VERSION, type ApiObject } from '../../api/types.js';
import { hasFinalizer, withFinalizer, withoutFinalizer } from '../../api/finalizers.js';
import { controllerOf, controllerReference, isOwnedBy, ownerRefTarget } from '../../controllers/gc/owner-references.js';
import { parsePropagationPolicy } from '../../controllers/gc/propagation.js';

const obj = (finalizers?: string[]): ApiObject => ({ apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name: 'a-0', namespace: 'ns', uid: 'u', finalizers } });

describe('finalizer and ownerReference helpers', () => {
  it('adds and removes finalizers idempotently without touching the input', () => {
    const o = obj(['x']);
    const added = withFinalizer(o, 'y');
    assert.deepEqual(added?.metadata.finalizers, ['x', 'y']);
    assert.deepEqual(o.metadata.finalizers, ['x']);
    assert.equal(withFinalizer(added!, 'y'), undefined);
    assert.deepEqual(withoutFinalizer(added!, 'x')?.metadata.finalizers, ['y']);
    assert.equal(withoutFinalizer(o, 'nope'), undefined);
    assert.ok(hasFinalizer(added!, 'y') && !hasFinalizer(obj(), 'y'));
  });

  it('builds controller references and resolves owners in the right scope', () => {
    const vc: ApiObject = { apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: 'a', namespace: 'ns', uid: 'vc-u' } };
    const ref = controllerReference(vc);
    const dep: ApiObject = { ...obj(), metadata: { ...obj().metadata, ownerReferences: [ref] } };
    assert.equal(controllerOf(dep)?.uid, 'vc-u');
    assert.ok(isOwnedBy(dep, vc));
    assert.deepEqual(ownerRefTarget(ref, dep), { kind: 'VirtualCluster', name: 'a', namespace: 'ns' });
    const pnRef = { apiVersion: API_VERSION, kind: 'PhysicalNode', name: 'blade1', uid: 'p' };
    assert.deepEqual(ownerRefTarget(pnRef, dep), { kind: 'PhysicalNode', name: 'blade1' }, 'cluster-scoped owner');
    assert.throws(() => controllerReference({ ...vc, metadata: { name: 'a' } }), /no uid/);
  });

  it('parses --cascade values', () => {
    assert.equal(parsePropagationPolicy('orphan'), 'orphan');
    assert.throws(() => parsePropagationPolicy('sideways'), /background, foreground, orphan/);
  });
});
