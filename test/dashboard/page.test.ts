// The dashboard page in a real headless chromium, on a real embedded store (no testbed): what it
// shows, that it follows the store live without a reload, that markup in the data stays text, and
// that its actions need the token. The testbed run with real guests is dashboard.e2e.test.ts.

import assert from 'node:assert/strict';
import type { Migration, PhysicalNode, VirtualNode } from '../../api/types.js';
import { waitFor } from '../controllers/helpers.js';
import { openDashboard, type BrowserBed } from './browser.js';
import { MARKUP, migration, startBed, TOKEN, type DashboardBed } from './fixtures.js';

describe('dashboard page in headless chromium', function () {
  this.timeout(60_000);
  let bed: DashboardBed;
  let b: BrowserBed;
  afterEach(async () => {
    await b?.close();
    await bed?.close();
  });

  it('shows every node with its VMs, follows the store live without reload, and renders markup as text', async () => {
    bed = await startBed();
    b = await openDashboard(bed.dashboard.url);
    assert.deepEqual(await b.placement(), { n1: ['default/web-0'], n2: ['default/web-1'] });
    const bars = await b.page.$$eval('.node[data-node="n1"] .bars .figure', (els) => els.map((e) => e.textContent));
    assert.deepEqual(bars, ['1 / 4', '256 MiB / 4 GiB', '1 / 4']);
    const vcFacts = await b.page.$eval('.vc[data-vc="default/web"] .facts', (e) => e.textContent ?? '');
    assert.match(vcFacts, /placement Cyclic \/ Lazy/);
    assert.equal(await b.page.$eval('#mode', (e) => e.textContent), 'read-only');

    // Markup in an annotation is text: no element made from it, no script run.
    const ann = await b.page.$eval('.vc[data-vc="default/web"] [data-annotation="description"]', (e) => ({ text: e.textContent, imgs: e.querySelectorAll('img,script,b').length }));
    assert.equal(ann.text, `description: ${MARKUP}`);
    assert.equal(ann.imgs, 0);
    assert.equal(await b.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);

    // Live: a change in the store moves the VM's box within 2 s, on the same page load.
    await b.page.evaluate(() => { (window as unknown as { __sameLoad: boolean }).__sameLoad = true; });
    const vn = await bed.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name: 'web-1' });
    const t0 = Date.now();
    await bed.store.updateStatus<VirtualNode>({ ...vn, status: { ...vn.status, host: 'n1' } });
    await b.page.waitForFunction(() => document.querySelector('.node[data-node="n1"] .vm[data-vm="default/web-1"]'), { timeout: 2000 });
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(await b.page.evaluate(() => (window as unknown as { __sameLoad?: boolean }).__sameLoad), true, 'no reload');
    assert.deepEqual(await b.placement(), { n1: ['default/web-0', 'default/web-1'], n2: [] });

    // A migration in flight: its figures from QEMU, and the VM marked in both boxes.
    await bed.store.create<Migration>(migration('web-0-mig', 'web-0', 'n2', {
      phase: 'Running', sourceNode: 'n1', startTime: new Date().toISOString(), message: 'migrating from n1 to n2',
      progress: { transferredBytes: 40 << 20, remainingBytes: 70 << 20, totalBytes: 128 << 20, dirtyBytesPerSec: 3 << 20, throughputBytesPerSec: 30 << 20, passes: 1, sampleTime: new Date().toISOString() },
    }));
    await b.page.waitForSelector('.migration[data-migration="default/web-0-mig"] .stats', { timeout: 2000 });
    const stats = await b.page.$eval('.migration[data-migration="default/web-0-mig"] .stats', (e) => e.textContent ?? '');
    assert.match(stats, /sent40 MiB.*remaining70 MiB.*dirtied3 MiB\/s.*throughput30 MiB\/s/);
    assert.ok(await b.page.$('.node[data-node="n2"] .vm.ghost[data-ghost="default/web-0"]'), 'the target shows the VM coming');
    assert.ok(await b.page.$('.node[data-node="n1"] .vm.migrating[data-vm="default/web-0"]'), 'the source shows it leaving');

    const m = await bed.store.get<Migration>({ kind: 'Migration', namespace: 'default', name: 'web-0-mig' });
    await bed.store.updateStatus<Migration>({ ...m, status: { ...m.status, phase: 'Succeeded', downtimeMs: 42, totalMs: 900, completionTime: new Date().toISOString() } });
    await b.page.waitForSelector('.past tr[data-migration="default/web-0-mig"]', { timeout: 2000 });
    assert.match(await b.page.$eval('.past tr[data-migration="default/web-0-mig"]', (e) => e.textContent ?? ''), /42 ms/);
    assert.deepEqual(b.problems, [], 'no page errors and no CSP violations');
  });

  it('actions: refused without the token (nothing changes), carried out with it', async () => {
    bed = await startBed({ token: true });
    b = await openDashboard(bed.dashboard.url);
    assert.equal(await b.page.$eval('#mode', (e) => e.textContent), 'actions enabled');
    const pn = () => bed.store.get<PhysicalNode>({ kind: 'PhysicalNode', name: 'n2' });
    await b.page.select('#act-node', 'n2');
    await b.page.click('#do-cordon');
    await waitFor('the refusal shown', () => b.page.$eval('#act-result', (e) => /^401/.test(e.textContent ?? '')), 5000, 50);
    assert.equal((await pn()).spec?.unschedulable, false, 'nothing changed');

    await b.page.type('#token', TOKEN);
    await b.page.click('#do-cordon');
    await waitFor('n2 cordoned', async () => (await pn()).spec?.unschedulable === true, 5000, 50);
    await b.page.waitForSelector('.node[data-node="n2"] .badge.warn', { timeout: 2000 });
    assert.match(await b.page.$eval('#act-result', (e) => e.textContent ?? ''), /physicalnode\/n2 cordoned/);
    assert.deepEqual(b.problems.filter((p) => !/401/.test(p)), [], 'no page errors and no CSP violations (the 401 is logged by the browser)');
  });
});
