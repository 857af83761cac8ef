// The dashboard's HTTP side on a real embedded store: security headers on every response, the SSE
// snapshot and live changes from the store's watch, and actions refused without the token (the
// store unchanged) and carried out with it.

import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import { CONTENT_SECURITY_POLICY } from '../../dashboard/server.js';
import { migration, readSse, startBed, TOKEN, type DashboardBed } from './fixtures.js';
import { waitFor } from '../controllers/helpers.js';

type ViewLike = { kind: string; name: string; [k: string]: unknown };

function rawGet(url: string, host: string): Promise<number> {
  return new Promise((ok, fail) => {
    const req = request(url, { headers: { host } }, (res) => { res.resume(); ok(res.statusCode ?? 0); });
    req.on('error', fail);
    req.end();
  });
}

describe('dashboard server', function () {
  this.timeout(30_000);
  let bed: DashboardBed;
  afterEach(async () => { await bed?.close(); });
  const pn = (name: string) => bed.store.get<PhysicalNode>({ kind: 'PhysicalNode', name });
  const post = (action: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${bed.dashboard.url}api/actions/${action}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  it('sets a strict Content-Security-Policy and hardening headers on every response', async () => {
    bed = await startBed();
    for (const [path, status, type] of [['', 200, 'text/html'], ['app.js', 200, 'text/javascript'], ['app.css', 200, 'text/css'],
      ['api/info', 200, 'application/json'], ['nope', 404, 'text/plain']] as const) {
      const r = await fetch(`${bed.dashboard.url}${path}`);
      assert.equal(r.status, status, path);
      assert.match(r.headers.get('content-type') ?? '', new RegExp(type), path);
      assert.equal(r.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', path);
    }
    assert.match(CONTENT_SECURITY_POLICY, /default-src 'none'/);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/, 'no inline scripts, no eval');
    const html = await (await fetch(bed.dashboard.url)).text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'the page has no inline script');
    assert.doesNotMatch(html, /\sstyle=|\son[a-z]+=/i, 'the page has no inline style or handler');
    const refused = await post('cordon', { node: 'n1' });
    assert.equal(refused.headers.get('content-security-policy'), CONTENT_SECURITY_POLICY, 'refusals carry it too');
    const sse = await readSse(`${bed.dashboard.url}api/events`);
    assert.equal(sse.headers['content-security-policy'], CONTENT_SECURITY_POLICY, 'the event stream carries it too');
    sse.close();
  });

  it('answers only to a loopback Host when bound to loopback (no DNS rebinding)', async () => {
    bed = await startBed();
    const port = new URL(bed.dashboard.url).port;
    assert.equal(await rawGet(bed.dashboard.url, `127.0.0.1:${port}`), 200);
    assert.equal(await rawGet(bed.dashboard.url, `localhost:${port}`), 200);
    assert.equal(await rawGet(bed.dashboard.url, `evil.example:${port}`), 421);
  });

  it('streams a snapshot, then each change the store watch delivers, with no request from the client', async () => {
    bed = await startBed();
    const sse = await readSse(`${bed.dashboard.url}api/events`);
    try {
      assert.equal(sse.status, 200);
      assert.match(String(sse.headers['content-type']), /^text\/event-stream/);
      const snap = (await sse.next('snapshot')) as { objects: Record<string, ViewLike[]> };
      assert.deepEqual(snap.objects.PhysicalNode!.map((o) => o.name).sort(), ['n1', 'n2']);
      assert.deepEqual(snap.objects.VirtualNode!.map((o) => [o.name, o.host]).sort(), [['web-0', 'n1'], ['web-1', 'n2']]);
      const pnView = snap.objects.PhysicalNode![0]!;
      assert.equal(pnView.ssh, undefined, 'SSH settings are not sent');

      const vn = await bed.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name: 'web-1' });
      await bed.store.updateStatus<VirtualNode>({ ...vn, status: { ...vn.status, host: 'n1' } });
      const change = (await sse.next('change')) as { op: string; object: ViewLike };
      assert.equal(change.op, 'put');
      assert.deepEqual([change.object.kind, change.object.name, change.object.host], ['VirtualNode', 'web-1', 'n1']);

      await bed.store.create(migration('m1', 'web-0', 'n2', {
        phase: 'Running', sourceNode: 'n1', startTime: new Date().toISOString(),
        progress: { transferredBytes: 10 << 20, remainingBytes: 90 << 20, totalBytes: 128 << 20, dirtyBytesPerSec: 1 << 20, throughputBytesPerSec: 32 << 20, passes: 1, sampleTime: new Date().toISOString() },
      }));
      const m = (await sse.next('change')) as { object: ViewLike & { progress: { remainingBytes: number } } };
      assert.equal(m.object.kind, 'Migration');
      assert.equal(m.object.progress.remainingBytes, 90 << 20);

      await bed.store.delete({ kind: 'Migration', namespace: 'default', name: 'm1' });
      const d = (await sse.next('change')) as { op: string; object: ViewLike };
      assert.deepEqual([d.op, d.object.name], ['delete', 'm1']);
    } finally {
      sse.close();
    }
  });

  it('does nothing for a page nobody has open: informers asked for at the first client, listened to only while one is attached', async () => {
    bed = await startBed();
    assert.deepEqual(bed.cache.kinds(), [], 'no informer made before a client attaches (the Event one is the dashboard\'s alone)');
    assert.equal(bed.dashboard.feed.listening, false);
    const first = await readSse(`${bed.dashboard.url}api/events`);
    await first.next('snapshot');
    assert.equal(bed.dashboard.feed.listening, true);
    assert.ok(bed.cache.kinds().includes('Event'));
    first.close();
    await waitFor('the feed stops listening once its one client left', async () => !bed.dashboard.feed.listening && bed.dashboard.feed.clientCount === 0, 5_000, 20);
    // A change while nobody watches is in the next client's snapshot, and changes reach it live.
    const vn = await bed.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name: 'web-1' });
    await bed.store.updateStatus<VirtualNode>({ ...vn, status: { ...vn.status, host: 'n1' } });
    await waitFor('the cache has the change', async () => bed.cache.informer<VirtualNode>('VirtualNode').list().some((v) => v.metadata.name === 'web-1' && v.status?.host === 'n1'), 5_000, 20);
    const second = await readSse(`${bed.dashboard.url}api/events`);
    try {
      const snap = (await second.next('snapshot')) as { objects: Record<string, ViewLike[]> };
      assert.deepEqual(snap.objects.VirtualNode!.map((o) => [o.name, o.host]).sort(), [['web-0', 'n1'], ['web-1', 'n1']]);
      const again = await bed.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name: 'web-0' });
      await bed.store.updateStatus<VirtualNode>({ ...again, status: { ...again.status, host: 'n2' } });
      const change = (await second.next('change')) as { object: ViewLike };
      assert.deepEqual([change.object.name, change.object.host], ['web-0', 'n2']);
    } finally {
      second.close();
    }
  });

  it('read-only without a token file: every action is refused with 403 and nothing changes', async () => {
    bed = await startBed();
    assert.deepEqual(await (await fetch(`${bed.dashboard.url}api/info`)).json(), { actions: false });
    for (const [action, body] of [['cordon', { node: 'n1' }], ['migrate', { namespace: 'default', name: 'web-0', node: 'n2' }], ['suspend', { name: 'web' }]] as const) {
      const r = await post(action, body, { authorization: `Bearer ${TOKEN}` });
      assert.equal(r.status, 403, action);
      assert.match(((await r.json()) as { error: string }).error, /read-only.*--ui-token-file/);
    }
    assert.equal((await pn('n1')).spec?.unschedulable, false);
    assert.equal((await bed.store.list('Migration')).items.length, 0);
  });

  it('with a token file: refuses requests without the right token (401), carries out those with it', async () => {
    bed = await startBed({ token: true });
    assert.deepEqual(await (await fetch(`${bed.dashboard.url}api/info`)).json(), { actions: true });
    const none = await post('cordon', { node: 'n1' });
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal((await post('cordon', { node: 'n1' }, { authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
    assert.equal((await fetch(`${bed.dashboard.url}api/actions/cordon`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: 'node=n1' })).status, 415);
    assert.equal((await pn('n1')).spec?.unschedulable, false, 'refused requests changed nothing');

    const bad = await post('cordon', { node: 'n1; rm -rf /' }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /^node: give a name/);

    const ok = await post('cordon', { node: 'n1' }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.match(((await ok.json()) as { output: string }).output, /cordoned/);
    assert.equal((await pn('n1')).spec?.unschedulable, true);

    const mig = await post('migrate', { namespace: 'default', name: 'web-0', node: 'n2' }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(mig.status, 200, await mig.clone().text());
    const migs = (await bed.store.list<ReturnType<typeof migration>>('Migration')).items;
    assert.deepEqual(migs.map((x) => [x.spec?.virtualNode, x.spec?.targetNode]), [['web-0', 'n2']]);

    const missing = await post('migrate', { namespace: 'default', name: 'nope', node: 'n2' }, { authorization: `Bearer ${TOKEN}` });
    assert.equal(missing.status, 409);
    assert.match(((await missing.json()) as { output: string }).output, /virtualnode "nope" not found/);
  });
});
