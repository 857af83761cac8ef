// vcctl wait with bad values and absent objects, in-process against the real embedded store.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { VirtualCluster } from '../../api/types.js';
import { MAX_DURATION_MS, parseDuration } from '../../cli/duration.js';
import { vcctl } from './helpers.js';

const VC_REF = { kind: 'VirtualCluster', namespace: 'default', name: 'stripes' };

describe('vcctl wait: bad values and absent objects', function () {
  this.timeout(30_000);
  let dir: string;
  let url: string;
  let store: SqliteStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-wait-'));
    url = `file:${join(dir, 'store.db')}`;
    store = new SqliteStore(join(dir, 'store.db'));
    assert.equal((await vcctl(url, ['apply', '-f', 'manifests/stripes.yaml'])).code, 0);
    const vc = await store.get<VirtualCluster>(VC_REF);
    await store.updateStatus({ ...vc, status: { phase: 'Pending' } });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = (...args: string[]) => vcctl(url, args);
  const setReady = async () => {
    const vc = await store.get<VirtualCluster>(VC_REF);
    await store.updateStatus({ ...vc, status: { ...vc.status, conditions: [{ type: 'Ready', status: 'True', reason: 'NodesRunning', message: '', lastTransitionTime: new Date().toISOString() }] } });
  };

  it('durations: the longest a timer can wait is accepted, a longer one refused with the flag named', () => {
    assert.equal(parseDuration('596h'), 596 * 3_600_000);
    assert.equal(parseDuration(`${MAX_DURATION_MS}ms`), MAX_DURATION_MS);
    assert.throws(() => parseDuration(`${MAX_DURATION_MS + 1}ms`, 'timeout'), {
      name: 'UsageError',
      message: `--timeout: "${MAX_DURATION_MS + 1}ms" is too long: at most 596h (2147483647 ms, the longest a timer can wait)`,
    });
    assert.throws(() => parseDuration('99999999999'), /is too long/);
  });

  it('refuses a --timeout too large for a timer instead of timing out at once', async () => {
    const r = await run('wait', 'vc/stripes', '--for=condition=Ready', '--timeout=600h');
    assert.deepEqual([r.code, r.stdout, r.stderr], [2, '',
      'error: --timeout: "600h" is too long: at most 596h (2147483647 ms, the longest a timer can wait)\nSee "vcctl wait --help".\n']);
    // The largest accepted value really waits (it neither fires at once nor overflows).
    const waiting = run('wait', 'vc/stripes', '--for=condition=Ready', '--timeout=596h');
    setTimeout(() => void setReady(), 500);
    const ok = await waiting;
    assert.deepEqual([ok.code, ok.stdout, ok.stderr], [0, 'virtualcluster/stripes condition met\n', '']);
  });

  it('a malformed --for=jsonpath is a usage error, not "condition met"', async () => {
    for (const expr of ['{.status.phase', '.status.phase}', '{{.status.phase}}', '{}', '{.status..phase}']) {
      const r = await run('wait', 'vc/stripes', `--for=jsonpath=${expr}`, '--timeout=1s');
      assert.equal(r.code, 2, `${expr}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^error: jsonpath "[^"]*"(: unbalanced braces| must start with "\."|: cannot parse at)/, expr);
    }
    const ok = await run('wait', 'vc/stripes', '--for=jsonpath={.status.phase}=Pending', '--timeout=1s');
    assert.deepEqual([ok.code, ok.stdout], [0, 'virtualcluster/stripes condition met\n']);
  });

  it('a missing object is "not found" at once; only --for=delete waits on an absent object', async () => {
    const started = Date.now();
    const r = await run('wait', 'vc/nope', '--for=condition=Ready', '--timeout=20s');
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '', 'error: virtualcluster "nope" not found in namespace "default"\n']);
    assert.ok(Date.now() - started < 10_000, `answered after ${Date.now() - started} ms`);
    const jp = await run('wait', 'pn/nope', '--for=jsonpath={.status}', '--timeout=20s');
    assert.deepEqual([jp.code, jp.stderr], [1, 'error: physicalnode "nope" not found\n']);
    const del = await run('wait', 'vc/nope', '--for=delete', '--timeout=20s');
    assert.deepEqual([del.code, del.stdout], [0, 'virtualcluster/nope deleted\n']);
  });

  it('an object deleted while waiting for a condition ends the wait with an error', async () => {
    const waiting = run('wait', 'vc/stripes', '--for=condition=Ready', '--timeout=20s');
    setTimeout(() => void store.delete(VC_REF), 500);
    const r = await waiting;
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, '',
      'error: virtualcluster "stripes" in namespace "default" was deleted while waiting for condition Ready=True\n']);
  });
});
