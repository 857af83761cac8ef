// No control character of an object reaches the terminal: an OSTemplate applied with escape
// sequences in its image path, kernel and annotations, Events and a GitSource about a synced file
// named with escape sequences. Human-readable output shows them as visible escapes; -o json and
// -o yaml keep them as the formats' escapes (parsing gives the stored text back).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { SqliteStore } from '../../api/store/sqlite-store.js';
import type { ApiObject, EventObject, OSTemplate } from '../../api/types.js';
import { escapeControl } from '../../cli/output/escape.js';
import { vcctl } from './helpers.js';

const ESC = '\x1b';
const CLEAR = `${ESC}[2J`;
const TITLE = `${ESC}]0;owned${'\x07'}`; // OSC: set the window title, ended by BEL
const CSI8 = '\u009b31m'; // C1 CSI: red, on terminals that take 8-bit controls
const RLO = '\u202e'; // right-to-left override
/** Anything a terminal would act on (newline aside: it ends lines). */
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/;

const TEMPLATE = `apiVersion: virtualinux.org/v1alpha1
kind: OSTemplate
metadata:
  name: evil
  annotations:
    note: "${'\\e'}[2J${'\\e'}]0;owned${'\\a'} bell${'\\a'} nul${'\\0'} csi${'\\u009b'}31m rlo${'\\u202e'}txt.exe"
spec:
  image:
    path: "/san/${'\\e'}[2J${'\\e'}]0;owned${'\\a'}.qcow2"
    format: qcow2
  boot:
    kernel: "/san/vmlinuz${'\\u009b'}31m${'\\a'}"
  revision: 1
`;

describe('vcctl output escapes control characters', () => {
  let dir: string;
  let url: string;
  let store: SqliteStore;
  const badFile = `/repo/${CLEAR}${TITLE}${RLO}lmy.yaml`;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'vl-escape-'));
    url = `file:${join(dir, 'store.db')}`;
    store = new SqliteStore(join(dir, 'store.db'));
    writeFileSync(join(dir, 'evil.yaml'), TEMPLATE);
    const r = await vcctl(url, ['apply', '-f', join(dir, 'evil.yaml')]);
    assert.deepEqual([r.code, r.stderr], [0, '']);
    const now = new Date().toISOString();
    const gs = await store.create({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'GitSource', metadata: { name: 'repo', namespace: 'default' },
      spec: { dir: '/repo' },
    } as ApiObject);
    await store.updateStatus({
      ...gs,
      status: {
        lastError: `${badFile}: document 1 (line 1): kind: is required\nsecond line`,
        conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidManifests', message: `${badFile}: invalid${'\x00'}`, lastTransitionTime: now }],
      },
    });
    for (const [name, kind, objName, message] of [
      ['e1', 'GitSource', 'repo', `cannot apply ${badFile}: kind: is required\nsecond line`],
      ['e2', 'OSTemplate', 'evil', `image ${CLEAR} missing${CSI8}`],
    ]) {
      await store.create<EventObject>({
        apiVersion: 'virtualinux.org/v1alpha1', kind: 'Event', metadata: { name, namespace: 'default' },
        spec: { involvedObject: { kind, name: objName, ...(kind === 'GitSource' ? { namespace: 'default' } : {}) }, type: 'Warning', reason: 'SyncFailed', message, count: 1, firstTimestamp: now, lastTimestamp: now, source: 'gitops' },
      });
    }
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const run = (...args: string[]) => vcctl(url, args);

  it('the apply stored the sequences as written (the input is accepted, the output must cope)', async () => {
    const o = await store.get<OSTemplate>({ kind: 'OSTemplate', name: 'evil' });
    assert.equal(o.spec?.image?.path, `/san/${CLEAR}${TITLE}.qcow2`);
    assert.equal(o.spec?.boot?.kernel, `/san/vmlinuz${CSI8}\x07`);
    assert.equal(o.metadata.annotations?.note, `${CLEAR}${TITLE} bell\x07 nul\x00 csi${CSI8} rlo${RLO}txt.exe`);
  });

  const human: [string, string[], string[]][] = [
    ['get ost (SOURCE)', ['get', 'ost'], ['/san/\\x1b[2J\\x1b]0;owned\\x07.qcow2']],
    ['get ost -o wide (KERNEL)', ['get', 'ost', '-o', 'wide'], ['/san/vmlinuz\\u009b31m\\x07']],
    ['describe ost (Annotations, Spec)', ['describe', 'ost', 'evil'], [
      'note=\\x1b[2J\\x1b]0;owned\\x07 bell\\x07 nul\\x00 csi\\u009b31m rlo\\u202etxt.exe', 'image \\x1b[2J missing\\u009b31m',
    ]],
    ['events', ['events'], ['cannot apply /repo/\\x1b[2J\\x1b]0;owned\\x07\\u202elmy.yaml: kind: is required']],
    ['events -o wide', ['events', '-o', 'wide'], ['\\u202elmy.yaml']],
    ['get events', ['get', 'ev'], ['\\u202elmy.yaml']],
    ['describe gs', ['describe', 'gs', 'repo'], ['/repo/\\x1b[2J\\x1b]0;owned\\x07\\u202elmy.yaml: invalid\\x00', 'cannot apply /repo/\\x1b[2J']],
    ['get gs -o wide (ERROR)', ['get', 'gs', '-o', 'wide'], ['/repo/\\x1b[2J\\x1b]0;owned\\x07\\u202elmy.yaml: document 1 (line 1): kind: is required']],
  ];
  for (const [what, args, shown] of human) {
    it(`${what}: no raw control character, each shown as a visible escape`, async () => {
      const r = await run(...args);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!RAW.test(r.stdout), `raw control character in: ${JSON.stringify(r.stdout)}`);
      for (const s of shown) assert.ok(r.stdout.includes(s), `${JSON.stringify(s)} not in ${JSON.stringify(r.stdout)}`);
    });
  }

  it('table rows stay one line each: a newline in a value does not break the row', async () => {
    const r = await run('events');
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3, r.stdout);
    assert.ok(lines[1].endsWith('kind: is required\\nsecond line') || lines[2].endsWith('kind: is required\\nsecond line'), r.stdout);
  });

  it('-o json and -o yaml write the formats\' escapes: parsing gives the stored text back', async () => {
    const stored = await store.get<OSTemplate>({ kind: 'OSTemplate', name: 'evil' });
    for (const fmt of ['json', 'yaml']) {
      const r = await run('get', 'ost', 'evil', '-o', fmt);
      assert.equal(r.code, 0);
      assert.ok(!RAW.test(r.stdout), `${fmt}: raw control character in: ${JSON.stringify(r.stdout)}`);
      const back = (fmt === 'json' ? JSON.parse(r.stdout) : parse(r.stdout)) as OSTemplate;
      assert.deepEqual(back, stored);
    }
  });

  it('an error quoting what the user typed shows its control characters escaped', async () => {
    const r = await run('get', 'vc', `--x${CLEAR}${CSI8}`);
    assert.equal(r.code, 2);
    assert.ok(!RAW.test(r.stderr), JSON.stringify(r.stderr));
    assert.equal(r.stderr, 'error: unknown flag "--x\\x1b[2J\\u009b31m"\nSee "vcctl get --help".\n');
  });

  it('vcctl sync: a refused file named with escape sequences is reported escaped', async () => {
    const repo = join(dir, 'sync-repo');
    mkdirSync(repo);
    writeFileSync(join(repo, `${CLEAR}${TITLE}bad.yaml`), 'apiVersion: virtualinux.org/v1alpha1\nkind: OSTemplate\nmetadata: {name: x}\n');
    const r = await run('sync', '--dir', repo, '--name', 'escapes');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /\\x1b\[2J/);
    assert.ok(!RAW.test(r.stdout + r.stderr), JSON.stringify(r.stderr));
  });

  it('escapeControl: C0, DEL, C1 and bidi controls visible; newline and tab kept only when asked', () => {
    assert.equal(escapeControl(`a${CLEAR}b\x07\x00\x7f${CSI8}${RLO}\u2066`), 'a\\x1b[2Jb\\x07\\x00\\x7f\\u009b31m\\u202e\\u2066');
    assert.equal(escapeControl('l1\nl2\tx\r'), 'l1\\nl2\\tx\\r');
    assert.equal(escapeControl('l1\nl2\tx\r', { keepLines: true }), 'l1\nl2\tx\\r');
    assert.equal(escapeControl('plain ünïcödé 日本'), 'plain ünïcödé 日本');
  });
});
