// The etcd store's retried writes, on a real etcd: a write whose attempt timed out although etcd had
// committed it (the answer was lost on the way back) is retried on another endpoint; the retry's
// compares fail on the write's own result, and the store recognises that state as its success
// instead of reporting AlreadyExists (a create) or Conflict (a write carrying resourceVersions, as
// placement's batches do) for a write that was done, or doing it a second time. See "A write whose attempt failed that way..." in api/store/etcd-store.ts.
//
// The fault is real: the store's first endpoint is a TCP proxy on loopback in front of the etcd;
// it forwards every byte of the request to etcd, and from the moment the request carries the
// test's marker it holds back everything etcd answers on that connection. The second endpoint is
// the same etcd, direct. What etcd holds afterwards is read with a client of its own.

import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { EtcdStore } from '../../api/store/etcd-store.js';
import { AlreadyExistsError } from '../../api/store/types.js';
import type { VirtualCluster } from '../../api/types.js';
import { startEtcd, type EtcdHarness } from '../../hack/lib/etcd-harness.js';
import { virtualCluster } from '../controllers/helpers.js';

const PREFIX = '/retried';

/**
 * A loopback TCP proxy to `target`. While `holdOn` is set, the first connection whose request
 * bytes contain it stops receiving: etcd's answers on that connection are counted and dropped.
 * With `dropRequest`, the request bytes from the marker on are dropped instead (etcd never sees it).
 */
class AnswerHoldingProxy {
  holdOn: string | undefined;
  dropRequest = false;
  /** Request bytes that carried the marker and went on to etcd / answers held back. */
  forwardedMarked = 0;
  heldBytes = 0;
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(target: { host: string; port: number }): Promise<AnswerHoldingProxy> {
    let self!: AnswerHoldingProxy;
    const server = createServer((client) => self.pipe(client, target));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    self = new AnswerHoldingProxy(server, typeof addr === 'object' && addr ? addr.port : 0);
    return self;
  }

  private pipe(client: Socket, target: { host: string; port: number }): void {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    let tail = '';
    let holding = false;
    client.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      tail = text.slice(-256);
      if (!holding && this.holdOn && text.includes(this.holdOn)) {
        holding = true;
        this.holdOn = undefined;
        if (this.dropRequest) return;
        this.forwardedMarked++;
      }
      if (holding && this.dropRequest) return;
      upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (holding) {
        this.heldBytes += d.length;
        return;
      }
      client.write(d);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('etcd store: a write whose answer was lost is retried and recognised as done, written once (real etcd)', function () {
  this.timeout(60_000);
  let etcd: EtcdHarness;
  let proxy: AnswerHoldingProxy;
  let store: EtcdStore;

  /** etcd's own record of one key: its version (writes since creation) and mod revision. */
  const keyState = async (name: string) => {
    const res = await etcd.admin.get(`${PREFIX}/virtualclusters/rw/${name}`).exec();
    const kv = res.kvs[0];
    return { revision: Number(res.header.revision), version: kv ? Number(kv.version) : 0, modRevision: kv ? Number(kv.mod_revision) : 0 };
  };
  const marker = () => `hold-${randomBytes(6).toString('hex')}`;
  const marked = (name: string, m: string, nodes = 1): VirtualCluster => {
    const vc = virtualCluster(name, nodes, 'rw');
    return { ...vc, metadata: { ...vc.metadata, annotations: { 'test.virtualinux.org/marker': m } } };
  };

  before(async () => {
    etcd = await startEtcd();
    const direct = new URL(etcd.endpoints[0]!);
    proxy = await AnswerHoldingProxy.start({ host: direct.hostname, port: Number(direct.port) });
    store = await EtcdStore.connect({
      endpoints: [`http://127.0.0.1:${proxy.port}`, etcd.endpoints[0]!], prefix: PREFIX, callTimeoutMs: 10_000, attemptTimeoutMs: 1000,
    });
  });
  after(async () => {
    await store?.close();
    await proxy?.stop();
    await etcd?.stop();
  });
  beforeEach(async () => {
    // Every test starts on the proxied endpoint (the store sticks to the last one that answered).
    await store.close();
    store = await EtcdStore.connect({
      endpoints: [`http://127.0.0.1:${proxy.port}`, etcd.endpoints[0]!], prefix: PREFIX, callTimeoutMs: 10_000, attemptTimeoutMs: 1000,
    });
    proxy.forwardedMarked = 0;
    proxy.heldBytes = 0;
    proxy.dropRequest = false;
  });

  it('a create whose answer was lost succeeds once (not AlreadyExists)', async () => {
    const before = await keyState('c1');
    const m = marker();
    proxy.holdOn = m;
    const t0 = Date.now();
    const created = await store.create(marked('c1', m));
    const ms = Date.now() - t0;
    assert.equal(proxy.forwardedMarked, 1, 'the first attempt reached etcd through the proxy');
    assert.ok(proxy.heldBytes > 0, 'etcd answered the first attempt and the answer was held back');
    assert.ok(ms >= 900, `the first attempt ran into its 1 s deadline (took ${ms} ms)`);
    const after = await keyState('c1');
    assert.equal(after.version, 1, 'created once');
    assert.equal(after.revision, before.revision + 1, 'one write in etcd');
    assert.equal(created.metadata.resourceVersion, String(after.modRevision));
    const got = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'rw', name: 'c1' });
    assert.equal(got.metadata.uid, created.metadata.uid);
    // A second create of the same object is refused as always: recognition is only for a retry.
    await assert.rejects(store.create(marked('c1', m)), AlreadyExistsError);
  });

  it('an update with resourceVersion whose answer was lost succeeds once (not Conflict with itself)', async () => {
    const stored = await store.create(virtualCluster('u1', 1, 'rw'));
    const before = await keyState('u1');
    const m = marker();
    proxy.holdOn = m;
    const updated = await store.update({ ...marked('u1', m, 3), metadata: { ...marked('u1', m, 3).metadata, resourceVersion: stored.metadata.resourceVersion } });
    assert.equal(proxy.forwardedMarked, 1, 'the first attempt reached etcd through the proxy');
    assert.ok(proxy.heldBytes > 0, 'etcd answered the first attempt and the answer was held back');
    const after = await keyState('u1');
    assert.equal(after.version, before.version + 1, 'the update was written once');
    assert.equal(after.revision, before.revision + 1, 'one write in etcd');
    assert.equal(updated.metadata.resourceVersion, String(after.modRevision));
    const got = await store.get<VirtualCluster>({ kind: 'VirtualCluster', namespace: 'rw', name: 'u1' });
    assert.equal(got.spec?.nodes, 3);
    assert.equal(got.metadata.generation, 2);
  });

  it('a batch whose answer was lost is applied once, every object at one revision', async () => {
    const b1 = await store.create(virtualCluster('b1', 1, 'rw'));
    const before = [await keyState('b1'), await keyState('b2')];
    const m = marker();
    proxy.holdOn = m;
    // As placement writes: every object with the resourceVersion it was planned from.
    const out = await store.batch([
      { op: 'update', object: { ...marked('b1', m, 2), metadata: { ...marked('b1', m, 2).metadata, resourceVersion: b1.metadata.resourceVersion } } },
      { op: 'create', object: virtualCluster('b2', 1, 'rw') },
    ]);
    assert.equal(proxy.forwardedMarked, 1);
    assert.ok(proxy.heldBytes > 0);
    const after = [await keyState('b1'), await keyState('b2')];
    assert.deepEqual(after.map((a) => a.version), [before[0]!.version + 1, 1]);
    assert.equal(after[0]!.revision, before[0]!.revision + 1, 'one transaction in etcd');
    assert.deepEqual(out.map((o) => o.metadata.resourceVersion), [String(after[0]!.modRevision), String(after[0]!.modRevision)]);
  });

  it('control: a write whose request was lost (never reached etcd) is applied by the retry, once', async () => {
    await store.create(virtualCluster('d1', 1, 'rw'));
    const before = await keyState('d1');
    const m = marker();
    proxy.dropRequest = true;
    proxy.holdOn = m;
    const updated = await store.update(marked('d1', m, 2));
    assert.equal(proxy.forwardedMarked, 0, 'the first attempt never reached etcd');
    const after = await keyState('d1');
    assert.equal(after.version, before.version + 1);
    assert.equal(after.revision, before.revision + 1);
    assert.equal(updated.metadata.resourceVersion, String(after.modRevision));
  });
});
