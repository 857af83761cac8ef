// XenDriver against golden configuration files and recorded argument vectors: fast unit tests,
// nothing here boots a Xen guest (the driver runs for real on full testbed nodes in
// xen-driver.full.test.ts). What is checked: the xl configuration generated from a DomainSpec, the
// exact xl command sequences each operation issues, and how the driver reads `xl list -l` /
// `xl list` output and xl failures.

import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HypervisorError, MigrationCancelledError, MigrationFailedError, MigrationSettledError, MigrationStrandedError, SwitchoverError, type DomainSpec } from '../../drivers/hypervisor/types.js';
import { XenDriver } from '../../drivers/hypervisor/xen-driver.js';
import { configDiskPaths, migrationSshCommand, renderXlConfig, xenCmdline, xlString } from '../../drivers/hypervisor/xen-config.js';
import { XEN_BLOCK_SCRIPT, XEN_MIGRATE_RECEIVE_SCRIPT, XL_LIST_SCRIPT } from '../../drivers/hypervisor/xen-scripts.js';
import type { ExecOptions, ExecResult } from '../../drivers/transport/types.js';
import { parseXlListLong, parseXlListStates, XlLineClock } from '../../drivers/hypervisor/xl-output.js';
import { HANG, RecordingTransport } from './recording-transport.js';
import { XEN_VIF_SCRIPT } from '../../drivers/hypervisor/xen-vif-script.js';

const golden = (f: string): string => readFileSync(fileURLToPath(new URL(`golden/${f}`, import.meta.url)), 'utf8');

const spec: DomainSpec = {
  name: 'default.stripes-0',
  vcpus: 1,
  memoryMiB: 256,
  boot: { kernel: '/san/templates/busybox/vmlinux', initrd: '/san/templates/busybox/initrd.img', cmdline: 'console=ttyS0 root=/dev/vda rw quiet panic=-1' },
  disks: {
    root: { path: '/san/vc/default/stripes/stripes-0.qcow2', format: 'qcow2' },
    swap: { path: '/san/vc/default/stripes/stripes-0.swap', format: 'raw' },
    config: { path: '/san/vc/default/stripes/stripes-0.config', format: 'raw', readOnly: true },
  },
  sharedDir: '/san/vc/default/stripes/shared',
  network: { tap: 'vc-stripes-0', mac: '52:54:00:0a:0a:02', ip: '10.10.1.2' },
};

const oddSpec: DomainSpec = {
  name: 'team "a".node\\0',
  vcpus: 2,
  memoryMiB: 128,
  boot: { kernel: '/san/k,1/vmlinux', cmdline: 'console=ttyS0 quiet' },
  disks: { root: { path: '/san/odd dir,x/root "1".img', format: 'raw' } },
};

// `xl list -l` as Xen 4.17 prints it (fields trimmed to those read), and the `xl list` table.
const LIST_LONG = JSON.stringify([
  { domid: 0, config: { c_info: { name: 'Domain-0' }, b_info: { max_vcpus: 4, max_memkb: 1048576 } } },
  { domid: 7, config: { c_info: { name: 'default.stripes-0' }, b_info: { max_vcpus: 1, max_memkb: 262144 } } },
]);
const LIST_TABLE = [
  'Name                                        ID   Mem VCPUs\tState\tTime(s)',
  'Domain-0                                     0  1024     4     r-----      12.5',
  'default.stripes-0                            7   256     1     -b----       1.2',
  '',
].join('\n');

/** The raw-disk spec the driver renders with its block script (golden/stripes-0.pv.cfg). */
const rawSpec: DomainSpec = {
  ...spec,
  disks: { ...spec.disks, root: { path: '/san/vc/default/stripes/stripes-0.img', format: 'raw' } },
  sharedDir: undefined,
};
const RUN = '/run/virtualinux/xen';
/** The run directory's domain files, as XL_LIST_SCRIPT's third command reads them (its answers are given as for this argv). */
const FIND = ['find', RUN, '-maxdepth', '1', '-type', 'f', '(', '-name', '*.cfg', '-o', '-name', '*.migrating', '-o', '-name', '*.incoming', ')'];
/** list()'s one command: `xl list -l`, the `xl list` table and FIND in one shell (xen-scripts.ts XL_LIST_SCRIPT). */
const LIST = ['sh', '-c', XL_LIST_SCRIPT, 'sh', RUN, '.migrating', '.incoming'];
const CONSOLE = '/var/log/xen/console/guest-default.stripes-0.log';
/** xenconsoled's name for the log of a domain that arrived by live migration. */
const CONSOLE_IN = '/var/log/xen/console/guest-default.stripes-0--incoming.log';
/** xl create of stripes-0 under its lock (one create per domain at a time), its old console logs removed first. */
const DISKS = ['/san/vc/default/stripes/stripes-0.img', '/san/vc/default/stripes/stripes-0.swap', '/san/vc/default/stripes/stripes-0.config'];
/** xl create of stripes-0 under its lock (one create per domain at a time), its old console logs removed first, its disks attached before (vl-block prepare) and what no domain took detached after. */
const CREATE = ['flock', '-n', '-E', '75', `${RUN}/default.stripes-0.cfg.lock`, 'sh', '-c', 'blk=$1 cfg=$2 n=$3; shift 3\nwhile [ "$n" -gt 0 ]; do rm -f -- "$1"; shift; n=$((n - 1)); done\n"$blk" prepare "$@" && xl create -q "$cfg"; rc=$?\n"$blk" unprepare "$@"; exit $rc', 'sh', `${RUN}/vl-block`, `${RUN}/default.stripes-0.cfg`, '2', CONSOLE, CONSOLE_IN, ...DISKS];
const CHMOD = ['chmod', '755', `${RUN}/vl-block`, `${RUN}/vl-vif`, `${RUN}/vl-migrate-receive`];

/**
 * Answers list()'s one command (LIST) as the node's shell runs it: each of its three commands
 * answered from what is given for `xl list -l`, `xl list` and FIND, each output followed by its
 * status line; the log records LIST once. Every other command as RecordingTransport answers it.
 */
class XenRecordingTransport extends RecordingTransport {
  override async exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    if (argv[0] !== 'sh' || argv[2] !== XL_LIST_SCRIPT) return super.exec(argv, opts);
    this.log.push({ argv: [...argv] });
    const parts = [['xl', 'list', '-l'], ['xl', 'list'], FIND].map((a) => this.respond(a));
    return { code: 0, stdout: parts.map((r) => `${r.stdout}\n@@vl-status ${r.code}\n`).join(''), stderr: parts.map((r) => r.stderr).join('') };
  }
}

function xenNode(name: string): { t: RecordingTransport; d: XenDriver } {
  const t = new XenRecordingTransport(name);
  return { t, d: new XenDriver({ transport: t, runRoot: '/run/virtualinux/xen', migrationAddress: `${name}.example`, guestType: 'pv' }) };
}

const ok = (stdout = ''): { code: number; stdout: string; stderr: string } => ({ code: 0, stdout, stderr: '' });

describe('XenDriver (golden configurations, recorded argument vectors)', () => {
  it('renders the xl configuration of a routed PVH guest as in golden/stripes-0.cfg', () => {
    assert.equal(renderXlConfig(spec), golden('stripes-0.cfg'));
  });

  it('renders quotes, backslashes and commas safely, as in golden/odd-name.cfg', () => {
    assert.equal(renderXlConfig(oddSpec, { guestType: 'pv' }), golden('odd-name.cfg'));
    assert.equal(xlString('a"b\\c'), '"a\\"b\\\\c"');
    assert.throws(() => xlString('a\nb'), HypervisorError);
    assert.throws(() => renderXlConfig({ ...spec, sharedDir: '/san/a,b' }), /shared directory/);
    assert.throws(() => renderXlConfig({ ...spec, network: { tap: 'vc 0', mac: '52:54:00:00:00:01' } }), /tap name/);
    assert.equal(xenCmdline('quiet console=ttyS0 root=/dev/vda'), 'quiet console=hvc0 root=/dev/vda');
    // with our block script a qcow2 disk is a block device to xl (the script serves it over nbd)
    assert.match(renderXlConfig(spec, { blockScript: '/r/vl-block' }), /"format=raw, vdev=xvda, access=rw, script=\/r\/vl-block, target=\/san\/vc\/default\/stripes\/stripes-0\.qcow2"/);
  });

  it('parses xl list -l and the xl list table (Domain-0 left out, names with spaces)', () => {
    assert.deepEqual(parseXlListLong(LIST_LONG).map((e) => e.domid), [7]);
    assert.deepEqual(parseXlListLong(''), []);
    const states = parseXlListStates(LIST_TABLE + 'my dom 2                                     9   128     1     --p---       0.0\n');
    assert.equal(states.get('default.stripes-0'), '-b----');
    assert.equal(states.get('my dom 2'), '--p---');
  });

  it('create: installs the block script, writes the PV config and runs xl create; a second create of a running domain runs nothing', async () => {
    const { t, d } = xenNode('blade1');
    t.answer(['xl', 'list', '-l'], ok('[]'), 1).answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE));
    const info = await d.create(rawSpec);
    assert.deepEqual(info, { name: 'default.stripes-0', state: 'running', detail: '-b----', pid: 7, vcpus: 1, memoryMiB: 256 });
    assert.deepEqual(t.log, [
      { argv: LIST },
      { argv: ['mkdir', '-p', RUN] },
      { writeFile: `${RUN}/vl-block`, data: XEN_BLOCK_SCRIPT },
      { writeFile: `${RUN}/vl-vif`, data: XEN_VIF_SCRIPT },
      { writeFile: `${RUN}/vl-migrate-receive`, data: XEN_MIGRATE_RECEIVE_SCRIPT },
      { argv: CHMOD },
      { writeFile: `${RUN}/default.stripes-0.cfg`, data: golden('stripes-0.pv.cfg') },
      { argv: CREATE },
      { argv: LIST },
    ]);
    t.log.length = 0;
    await d.create(rawSpec);
    assert.deepEqual(t.commands, [LIST]);
  });

  it('guest type auto: PVH when `xl info` lists hap among virt_caps (asked once), else PV', async () => {
    for (const [caps, type] of [['pv hvm hap gnttab-v1 gnttab-v2', 'pvh'], ['pv hvm gnttab-v1', 'pv']] as const) {
      const t = new XenRecordingTransport('blade1');
      const d = new XenDriver({ transport: t, runRoot: RUN, migrationAddress: 'blade1.example' });
      t.answer(['xl', 'info'], ok(`host                   : blade1\nvirt_caps              : ${caps}\nxen_caps               : xen-3.0-x86_64\n`));
      t.answer(['xl', 'list', '-l'], ok('[]'), 1).answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE));
      await d.create(rawSpec);
      assert.match(String(t.files.get(`${RUN}/default.stripes-0.cfg`)), new RegExp(`^type = "${type}"$`, 'm'));
      assert.equal(await d.guestType(), type);
      assert.equal(t.commands.filter((c) => c[1] === 'info').length, 1, 'xl info asked once');
    }
  });

  it('lists a domain that powered off (gone from xl, its configuration kept) as shutoff, and mid-migration names by their domain', async () => {
    const { t, d } = xenNode('blade1');
    const long = JSON.stringify([{ domid: 9, config: { c_info: { name: 'default.b--incoming' } } }]);
    t.answer(['xl', 'list', '-l'], ok(long)).answer(['xl', 'list'], ok(LIST_TABLE.replace('default.stripes-0  ', 'default.b--incoming'))).answer(FIND, ok(`${RUN}/default.a.cfg\n${RUN}/default.b.cfg\n`));
    assert.deepEqual((await d.list()).map((x) => [x.name, x.state, x.pid]), [['default.b', 'incoming', 9], ['default.a', 'shutoff', undefined]]);
  });

  it('destroy of a domain mid-migration goes by its xl name (--incoming, --migratedaway), never by the name a completed migration gives it', async () => {
    for (const [xlName, suffix] of [['default.b--incoming', '--incoming'], ['default.b--migratedaway', '--migratedaway']]) {
      const { t, d } = xenNode('blade2');
      const long = JSON.stringify([{ domid: 9, config: { c_info: { name: xlName } } }]);
      t.answer(['xl', 'list', '-l'], ok(long), 1).answer(['xl', 'list'], ok(LIST_TABLE.replace('default.stripes-0  ', xlName)), 1).answer(['xl', 'list', '-l'], ok('[]'));
      await d.destroy('default.b');
      assert.deepEqual(t.commands.filter((c) => c[1] === 'destroy'), [['xl', 'destroy', `default.b${suffix}`]]);
    }
    // renamed between the listing and the destroy (the migration completed: it runs there now):
    // xl finds no --incoming domain, and the running one is left alone with an error
    const { t, d } = xenNode('blade2');
    const incoming = JSON.stringify([{ domid: 9, config: { c_info: { name: 'default.b--incoming' } } }]);
    const running = JSON.stringify([{ domid: 9, config: { c_info: { name: 'default.b' } } }]);
    t.answer(['xl', 'list', '-l'], ok(incoming), 1).answer(['xl', 'list'], ok(LIST_TABLE.replace('default.stripes-0  ', 'default.b--incoming')), 1)
      .answer(['xl', 'destroy'], { code: 1, stdout: '', stderr: 'default.b--incoming is an invalid domain identifier' })
      .answer(['xl', 'list', '-l'], ok(running)).answer(['xl', 'list'], ok(LIST_TABLE.replace('default.stripes-0  ', 'default.b  ')));
    await assert.rejects(d.destroy('default.b'), /xl destroy default\.b failed/);
    assert.deepEqual(t.commands.filter((c) => c[1] === 'destroy'), [['xl', 'destroy', 'default.b--incoming']]);
    assert.ok(!t.commands.some((c) => c[0] === 'rm'), 'its files kept');
  });

  it('a domain being received (no configuration yet: xl list -l leaves it out) is listed as incoming where a migration to the node was prepared', async () => {
    const table = LIST_TABLE.replace('default.stripes-0  ', 'default.b--incoming');
    const { t, d } = xenNode('blade2');
    t.answer(['xl', 'list', '-l'], ok('[]')).answer(FIND, ok(`${RUN}/default.b.incoming\n`)).answer(['xl', 'list'], ok(table));
    assert.deepEqual((await d.list()).map((x) => [x.name, x.state, x.pid]), [['default.b', 'incoming', 7]]);
    assert.deepEqual(t.commands, [LIST]);
    // without the marker a --incoming name in the table is not taken when xl -l lists nothing
    const n = xenNode('blade2');
    n.t.answer(['xl', 'list', '-l'], ok('[]')).answer(FIND, ok('')).answer(['xl', 'list'], ok(table));
    assert.deepEqual(await n.d.list(), []);
    assert.deepEqual(n.t.commands, [LIST]);
  });

  it('create: reports xl create failures with xl stderr and where to look', async () => {
    const { t, d } = xenNode('blade1');
    t.answer(['xl', 'list', '-l'], ok('')).answer(['flock'], { code: 3, stdout: '', stderr: 'libxl: error: failed to get memory' });
    await assert.rejects(d.create(spec), /failed to get memory.*xl-default\.stripes-0\.log/);
    assert.ok(!t.commands.some((c) => c[1] === 'destroy'), 'nothing to destroy: xl listed no domain');
  });

  it('create while an earlier xl create of the domain still holds its lock: refused, nothing destroyed, the logs kept', async () => {
    const { t, d } = xenNode('blade1');
    t.answer(['xl', 'list', '-l'], ok('')).answer(['flock'], { code: 75, stdout: '', stderr: '' });
    await assert.rejects(d.create(spec), /still being created by an earlier xl create/);
    assert.ok(!t.commands.some((c) => c[1] === 'destroy' || c[0] === 'rm'), t.commands.map((c) => c.join(' ')).join('\n'));
  });

  it('shutdown asks xl and waits; destroy of an absent domain only removes its files', async () => {
    const { t, d } = xenNode('blade1');
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG), 1).answer(['xl', 'list'], ok(LIST_TABLE), 1).answer(['xl', 'list', '-l'], ok('[]'));
    assert.deepEqual(await d.shutdown('default.stripes-0', { timeoutMs: 5000 }), { clean: true });
    assert.deepEqual(t.commands, [LIST, ['xl', 'shutdown', 'default.stripes-0'], LIST]);
    t.log.length = 0;
    await d.destroy('default.stripes-0');
    assert.deepEqual(t.commands, [LIST, ['rm', '-f', '--', `${RUN}/default.stripes-0.cfg`, `${RUN}/default.stripes-0.cfg.lock`, `${RUN}/default.stripes-0.migrating`, `${RUN}/default.stripes-0.incoming`, CONSOLE, CONSOLE_IN]]);
  });

  it('shutdown destroys a guest that ignores the request within the timeout', async () => {
    const { t, d } = xenNode('blade1');
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE));
    assert.deepEqual(await d.shutdown('default.stripes-0', { timeoutMs: 600 }), { clean: false });
    assert.deepEqual(t.commands.at(-1), ['xl', 'destroy', 'default.stripes-0']);
  });

  it('suspend = xl save on the node\'s disk, moved into place when complete; resume = xl restore with our config on another node', async () => {
    const a = xenNode('blade1');
    a.t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(['sh', '-c'], ok('268435456\n'));
    const s = await a.d.suspend('default.stripes-0', '/san/state/stripes-0.xl');
    assert.equal(s.bytes, 268435456);
    assert.deepEqual(a.t.commands.slice(1), [
      ['mkdir', '-p', '/var/lib/xen'],
      ['xl', 'save', 'default.stripes-0', '/var/lib/xen/default.stripes-0.save'],
      ['sh', '-c', 'mv -f "$1" "$2.partial" && mv -f "$2.partial" "$2" && stat -c %s "$2"', 'sh', '/var/lib/xen/default.stripes-0.save', '/san/state/stripes-0.xl'],
      ['rm', '-f', '--', `${RUN}/default.stripes-0.cfg`, CONSOLE, CONSOLE_IN],
    ]);
    const b = xenNode('blade2');
    b.t.answer(['xl', 'list', '-l'], ok('[]'), 1).answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE));
    assert.equal((await b.d.resume(rawSpec, '/san/state/stripes-0.xl')).state, 'running');
    assert.deepEqual(b.t.commands, [
      LIST,
      ['mkdir', '-p', RUN],
      CHMOD,
      ['rm', '-f', '--', CONSOLE, CONSOLE_IN],
      ['sh', '-c', 'blk=$1 cfg=$2 state=$3; shift 3\n"$blk" prepare "$@" && xl restore "$cfg" "$state"; rc=$?\n"$blk" unprepare "$@"; exit $rc', 'sh', `${RUN}/vl-block`, `${RUN}/default.stripes-0.cfg`, '/san/state/stripes-0.xl', ...DISKS],
      ['rm', '-f', '--', '/san/state/stripes-0.xl'],
      LIST,
    ]);
  });

  it('a failed xl save leaves no partial file and says the domain keeps running', async () => {
    const { t, d } = xenNode('blade1');
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(['xl', 'save'], { code: 1, stdout: '', stderr: 'disk full' });
    await assert.rejects(d.suspend('default.stripes-0', '/san/s'), /disk full.*keeps running|keeps running.*disk full/);
    assert.deepEqual(t.commands.at(-1), ['rm', '-f', '--', '/var/lib/xen/default.stripes-0.save']);
  });

  it('migrate: pins the target host key, allows our key only xl migrate-receive on the target, runs xl migrate -s with our ssh', async () => {
    const { t, d } = xenNode('blade1');
    const b = xenNode('blade2');
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(['sh', '-c'], ok('ssh-ed25519 AAAAsource vl-xen-migration@blade1\n')).answer(['cat', '--'], ok('name = "default.stripes-0"\n'));
    b.t.answer(['cat', '/etc/ssh/ssh_host_ed25519_key.pub'], ok('ssh-ed25519 AAAAtarget root@blade2\n'));
    const r = await d.migrate('default.stripes-0', b.d);
    assert.equal(r.downtimeMs, -1, 'xl printed neither the suspend request nor the start on the target');
    assert.equal(r.phasesMs!.prepare + r.phasesMs!.transfer + r.phasesMs!.switchover + r.phasesMs!.cleanup, r.endToEndMs);
    const ssh = migrationSshCommand(`${RUN}/migration_ed25519`, `${RUN}/known_hosts.blade2.example`);
    assert.equal(ssh, `ssh -i ${RUN}/migration_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${RUN}/known_hosts.blade2.example -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=60 -l root`);
    assert.equal(t.files.get(`${RUN}/known_hosts.blade2.example`), 'blade2.example ssh-ed25519 AAAAtarget\n');
    const auth = b.t.commands.find((c) => c[0] === 'sh' && c[2] !== XL_LIST_SCRIPT)!;
    assert.equal(auth.at(-2), `restrict,command="${RUN}/vl-migrate-receive" ssh-ed25519 AAAAsource vl-xen-migration@blade1`);
    assert.equal(auth.at(-1), 'ssh-ed25519 AAAAsource vl-xen-migration@blade1', 'an older line of our key goes');
    assert.equal(b.t.files.get(`${RUN}/vl-migrate-receive`), XEN_MIGRATE_RECEIVE_SCRIPT);
    assert.deepEqual(t.commands.slice(-3), [
      ['cat', '--', `${RUN}/default.stripes-0.cfg`],
      ['xl', '-vvv', 'migrate', '-s', ssh, 'default.stripes-0', 'blade2.example'],
      ['rm', '-f', '--', `${RUN}/default.stripes-0.cfg`, `${RUN}/default.stripes-0.cfg.lock`, `${RUN}/default.stripes-0.migrating`, `${RUN}/default.stripes-0.incoming`, CONSOLE, CONSOLE_IN],
    ]);
    assert.equal(b.t.files.get(`${RUN}/default.stripes-0.cfg`), 'name = "default.stripes-0"\n', 'our copy of the configuration follows the domain');
    assert.equal(b.t.files.get(`${RUN}/default.stripes-0.incoming`), 'blade1\n', 'the target was told a domain is coming');
    assert.throws(() => migrationSshCommand('/a b/key', '/k'), /identity file/);
  });

  it('prepareMigration attaches the disk files but qcow2 on the target first; with beforeResume: xl migrate -p, the hook, then xl unpause on the target; run detaches what no domain took', async () => {
    const { t, d } = xenNode('blade1');
    const b = xenNode('blade2');
    const cfg = renderXlConfig(spec, { blockScript: `${RUN}/vl-block` });
    assert.deepEqual(configDiskPaths(cfg), [spec.disks.root.path, spec.disks.swap!.path, spec.disks.config!.path]);
    assert.deepEqual(configDiskPaths(renderXlConfig(oddSpec, { blockScript: '/r/vl-block' })), [oddSpec.disks.root.path]);
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(['sh', '-c'], ok('ssh-ed25519 AAAAsource x\n')).answer(['cat', '--'], ok(cfg));
    b.t.answer(['cat', '/etc/ssh/ssh_host_ed25519_key.pub'], ok('ssh-ed25519 AAAAtarget root@blade2\n'));
    const order: string[] = [];
    const prepared = await d.prepareMigration('default.stripes-0', b.d, { beforeResume: async () => { order.push(`hook after ${b.t.commands.filter((c) => c[1] === 'unpause').length} unpause`); } });
    const paths = configDiskPaths(cfg);
    assert.deepEqual(b.t.commands.at(-1), [`${RUN}/vl-block`, 'prepare-incoming', ...paths]);
    assert.ok(!t.commands.some((c) => c.includes('migrate')), 'nothing transferred before run()');
    const r = await prepared.run();
    assert.ok(r.preparedMs! >= 0);
    assert.deepEqual(order, ['hook after 0 unpause']);
    assert.deepEqual(t.commands.find((c) => c.includes('migrate'))!.slice(0, 4), ['xl', '-vvv', 'migrate', '-p']);
    const tail = b.t.commands.slice(-2);
    assert.deepEqual(tail, [['xl', 'unpause', 'default.stripes-0'], [`${RUN}/vl-block`, 'unprepare', ...paths]]);
    // a hook that fails: the domain stays paused on the target (its source copy is gone), said so
    const c = xenNode('blade1');
    c.t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(['sh', '-c'], ok('ssh-ed25519 AAAAsource x\n'));
    const c2 = xenNode('blade2');
    c2.t.answer(['cat', '/etc/ssh/ssh_host_ed25519_key.pub'], ok('ssh-ed25519 AAAAtarget root@blade2\n'));
    await assert.rejects(c.d.migrate('default.stripes-0', c2.d, { beforeResume: async () => { throw new Error('SAN unreachable'); } }),
      (e: Error) => e instanceof SwitchoverError && /paused on blade2.*SAN unreachable/.test(e.message));
  });

  it('the migration key\'s forced command runs xl migrate-receive, with -p only when xl asked for it', async () => {
    const { execFileSync } = await import('node:child_process');
    const run = (cmd: string): string => execFileSync('sh', ['-c', XEN_MIGRATE_RECEIVE_SCRIPT.replace(/exec xl/g, 'exec echo xl'), 'sh'], { env: { ...process.env, SSH_ORIGINAL_COMMAND: cmd } }).toString().trim();
    assert.equal(run('xl migrate-receive'), 'xl migrate-receive');
    assert.equal(run('xl -vvv migrate-receive -p'), 'xl migrate-receive -p');
    assert.equal(run('xl migrate-receive; rm -rf /'), 'xl migrate-receive');
    assert.equal(run('xl -p list'), 'xl migrate-receive');
  });

  it('cancelMigration ends the running xl migrate; a failed one is a MigrationFailedError naming missing log-dirty support', async () => {
    const t = new XenRecordingTransport('blade1');
    const d = new XenDriver({ transport: t, runRoot: RUN, migrationAddress: 'blade1.example', sshCommand: 'ssh -i /k' });
    const target = xenNode('blade2').d;
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(['xl', '-vvv', 'migrate'], { code: HANG, stdout: '', stderr: '' }, 1);
    const mig = d.migrate('default.stripes-0', target);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await d.cancelMigration('default.stripes-0'), true);
    await assert.rejects(mig, MigrationCancelledError);
    // (then it is listed once more: a failure past xl's point of no return would be settled)
    assert.deepEqual(t.commands.filter((c) => c[0] === '<kill>' || c[0] === 'rm').slice(-2), [['<kill>', 'xl', '-vvv', 'migrate', '-s', 'ssh -i /k', 'default.stripes-0', 'blade2.example'], ['rm', '-f', '--', `${RUN}/default.stripes-0.migrating`]]);
    assert.equal(t.files.get(`${RUN}/default.stripes-0.migrating`), 'blade2.example\n', 'the marker was written before xl migrate ran');
    assert.equal(await d.cancelMigration('default.stripes-0'), false);
    t.answer(['xl', '-vvv', 'migrate'], { code: 1, stdout: '', stderr: 'xc: error: Failed to enable logdirty: 95,22,0 (22 = Invalid argument): Internal error\nmigration target: Domain creation failed (code -3).' });
    await assert.rejects(d.migrate('default.stripes-0', target), (e: Error) => e instanceof MigrationFailedError && !(e instanceof MigrationCancelledError) && /log-dirty mode is not supported/.test(e.message) && /keeps running on blade1/.test(e.message));
  });

  it('an xl migrate started by an earlier manager: the source lists the domain as migrating while it runs, and cancelMigration ends it', async () => {
    const { t, d } = xenNode('blade1');
    const PS = ['ps', '-eo', 'pid=,args='];
    const xlLine = `  812 /usr/lib/xen-4.17/bin/xl -vvv migrate -s ssh -i ${RUN}/migration_ed25519 -o IdentitiesOnly=yes -l root default.stripes-0 blade2.example\n`;
    const rune = `  813 sh -c ssh -i ${RUN}/migration_ed25519 -l root blade2.example xl migrate-receive\n`;
    t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE))
      .answer(FIND, ok(`${RUN}/default.stripes-0.cfg\n${RUN}/default.stripes-0.migrating\n`)).answer(PS, ok(`    1 /sbin/init\n${xlLine}${rune}`), 3);
    assert.equal((await d.get('default.stripes-0'))?.state, 'migrating');
    // at the switchover xl has suspended it (s) and not yet renamed it: still migrating, not shut off
    t.answer(['xl', 'list'], ok(LIST_TABLE.replace('-b----', '---s--')));
    assert.equal((await d.get('default.stripes-0'))?.state, 'migrating');
    t.answer(['xl', 'list'], ok(LIST_TABLE));
    assert.equal(await d.cancelMigration('default.stripes-0'), true);
    assert.deepEqual(t.commands.at(-1), ['kill', '--', '812']);
    // the marker left by a manager that ended, its xl migrate gone: running, and nothing to cancel
    t.answer(PS, ok('    1 /sbin/init\n'));
    assert.equal((await d.get('default.stripes-0'))?.state, 'running');
    assert.equal(await d.cancelMigration('default.stripes-0'), false);
    // no marker: ps is not read
    const n = xenNode('blade1');
    n.t.answer(['xl', 'list', '-l'], ok(LIST_LONG)).answer(['xl', 'list'], ok(LIST_TABLE)).answer(FIND, ok(`${RUN}/default.stripes-0.cfg\n`));
    assert.equal((await n.d.get('default.stripes-0'))?.state, 'running');
    assert.ok(!n.t.commands.some((c) => c[0] === 'ps'));
  });

  it('XlLineClock: downtime from libxl asking the guest to suspend to the target starting it (lines as they arrive, split anywhere)', () => {
    // the order and wording of `xl -vvv migrate` of a PVH domU on a full node (Xen 4.17), abridged
    let now = 1000;
    const c = new XlLineClock(() => now);
    c.add('migration target: Ready to receive domain.\nxc: info: Saving domain 3, type x86 HVM\n');
    now = 214_000;
    c.add('libxl: debug: libxl_dom_suspend.c:203:domain_suspend_callback_common: Domain 3:issuing PVH/HVM suspend ');
    now = 214_400; // the line ends in a later chunk: it is stamped when it is whole
    c.add('request via XenBus control node\nlibxl: debug: libxl_dom_suspend.c:358:suspend_common_wait_guest_check: Domain 3:guest has suspended\n');
    assert.equal(c.downtimeMs(), -1, 'not started on the target yet');
    now = 254_100;
    c.add('migration target: Transfer complete, requesting permission to start domain.\nmigration target: Domain started successsfully.\nmigration sender: Target reports successful startup.\nMigration succ');
    assert.equal(c.downtimeMs(), 254_100 - 214_400);
    assert.equal(c.text(/\bdebug: /), 'migration target: Ready to receive domain.\nxc: info: Saving domain 3, type x86 HVM\nmigration target: Transfer complete, requesting permission to start domain.\nmigration target: Domain started successsfully.\nmigration sender: Target reports successful startup.\nMigration succ');
  });

  describe('a migration xl left past its point of no return (the source renamed <name>--migratedaway, suspended; "Domain state is now undefined")', () => {
    const NAME = 'default.stripes-0';
    const AWAY = `${NAME}--migratedaway`;
    const cfg = renderXlConfig(rawSpec, { blockScript: `${RUN}/vl-block` });
    const FAILED_BADLY = 'migration sender: Giving target permission to start.\nlibxl: error: libxl_utils.c:505:libxl_read_exactly: file/stream truncated reading success/failure report message from migration receiver stream\n** Migration failed during final handshake **\nDomain state is now undefined !\n';
    const table = (name: string, letters: string): string => `${LIST_TABLE.split('\n')[0]}\n${name.padEnd(44)} 7   256     1     ${letters}       1.2\n`;

    /** The source: our copy listed under `xlName` until xl renames it (xl rename/save answered here); `xlMigrate` the spawned xl's result. */
    function source(opts: { save?: number; stranded?: boolean; suspended?: boolean; xlRunning?: number } = {}): { t: RecordingTransport; d: XenDriver } {
      const { t, d } = xenNode('blade1');
      let xlName = opts.stranded ? AWAY : NAME;
      let letters = opts.stranded || opts.suspended ? '---ss-' : '-b----';
      let cfgKept = true;
      // an xl migrate of it still running (ps), the first `xlRunning` times asked
      if (opts.xlRunning) t.answer(['ps', '-eo', 'pid=,args='], ok(`  812 /usr/lib/xen-4.17/bin/xl -vvv migrate -s ssh -i /k -l root ${NAME} blade2.example\n`), opts.xlRunning);
      t.answer(['xl', '-vvv', 'migrate'], () => { xlName = AWAY; letters = '---ss-'; return { code: 1, stdout: '', stderr: FAILED_BADLY }; })
        .answer(['xl', 'rename'], (argv) => { xlName = argv[3]!; return ok(); })
        .answer(['xl', 'save', '-c'], () => { if (opts.save === undefined) letters = '-b----'; return opts.save ? { code: opts.save, stdout: '', stderr: 'libxl: error: save failed' } : ok(); })
        .answer(['xl', 'destroy'], () => { xlName = ''; return ok(); })
        .answer(['flock'], () => { xlName = NAME; letters = '-b----'; return ok(); })
        .answer(['xl', 'list', '-l'], () => ok(JSON.stringify(xlName ? [{ domid: 7, config: { c_info: { name: xlName }, b_info: { max_vcpus: 1, max_memkb: 262144 } } }] : [])))
        .answer(['xl', 'list'], () => ok(xlName ? table(xlName, letters) : table('x', '-b----').split('\n')[0]! + '\n'))
        .answer(['rm'], (argv) => { if (argv.includes(`${RUN}/${NAME}.cfg`)) cfgKept = false; return ok(); })
        .answer(FIND, () => ok(cfgKept ? `${RUN}/${NAME}.cfg\n${RUN}/${NAME}.migrating\n` : ''))
        .answer(['ps', '-eo', 'pid=,args='], ok('    1 /sbin/init\n'))
        .answer(['sh', '-c'], ok('ssh-ed25519 AAAAsource x\n')).answer(['cat', '--'], ok(cfg));
      return { t, d };
    }
    /** The target: `<name>--incoming` paused (left by a killed xl migrate-receive; its monitor stays, under init) until renamed, or nothing. */
    function target(incoming: boolean, renameFails = false): { t: RecordingTransport; d: XenDriver } {
      const { t, d } = xenNode('blade2');
      let xlName = incoming ? `${NAME}--incoming` : '';
      let letters = '--p---';
      t.answer(['cat', '/etc/ssh/ssh_host_ed25519_key.pub'], ok('ssh-ed25519 AAAAtarget root@blade2\n'))
        .answer(['xl', 'rename'], (argv) => { if (renameFails) return { code: 1, stdout: '', stderr: 'libxl: error: rename timed out' }; xlName = argv[3]!; return ok(); })
        .answer(['xl', 'unpause'], () => { letters = '-b----'; return ok(); })
        // xl -l leaves out a domain being received (no configuration yet)
        .answer(['xl', 'list', '-l'], () => ok(JSON.stringify(xlName === NAME ? [{ domid: 7, config: { c_info: { name: NAME } } }] : [])))
        .answer(['xl', 'list'], () => ok(xlName ? table(xlName, letters) : ''))
        .answer(FIND, ok(incoming ? `${RUN}/${NAME}.incoming\n` : ''))
        .answer(['ps', '-eo', 'ppid=,args='], ok('    0 /sbin/init\n    1 /usr/lib/xen-4.17/bin/xl migrate-receive\n'));
      return { t, d };
    }

    it('lists our stranded copy as paused (migratedaway) once no xl migrate sends it, migrating while one does', async () => {
      const { t, d } = source({ stranded: true, xlRunning: 1 });
      assert.deepEqual(await d.get(NAME), { name: NAME, state: 'migrating', detail: '---ss-', pid: 7, vcpus: 1, memoryMiB: 256 });
      assert.deepEqual(await d.get(NAME), { name: NAME, state: 'paused', detail: 'migratedaway', pid: 7, vcpus: 1, memoryMiB: 256 });
      await d.destroy(NAME);
      assert.deepEqual(t.commands.filter((c) => c[1] === 'destroy'), [['xl', 'destroy', AWAY]]);
    });

    it('the target has the whole domain (--incoming, its xl migrate-receive killed): renamed and unpaused there, our copy destroyed; the migration succeeds', async () => {
      const a = source();
      const b = target(true);
      const r = await a.d.migrate(NAME, b.d);
      assert.ok(r.downtimeMs >= -1);
      assert.deepEqual(b.t.commands.filter((c) => c[0] === 'xl' && ['rename', 'unpause', 'destroy'].includes(c[1]!)), [['xl', 'rename', `${NAME}--incoming`, NAME], ['xl', 'unpause', NAME]], 'the complete copy kept, never destroyed');
      assert.deepEqual(a.t.commands.filter((c) => c[0] === 'xl' && ['destroy', 'save', 'rename'].includes(c[1]!)), [['xl', 'destroy', AWAY]]);
      assert.equal(b.t.files.get(`${RUN}/${NAME}.cfg`), cfg, 'our configuration follows the domain');
      assert.equal((await b.d.get(NAME))?.state, 'running');
      assert.equal(await a.d.get(NAME), undefined);
    });

    it('the target has no copy: its leftovers go, ours is resumed here by xl save -c and renamed back (memory kept); the migration fails saying so', async () => {
      const a = source();
      const b = target(false);
      await assert.rejects(a.d.migrate(NAME, b.d), (e: Error) => e instanceof MigrationSettledError && !(e instanceof MigrationCancelledError)
        && e.settlement.runsOn === 'blade1' && e.settlement.memoryKept && !e.settlement.movedToTarget
        && /point of no return .*blade2 had no complete copy \(its leftovers were removed\): the suspended copy was resumed on blade1 \(xl save -c\), its memory state kept/.test(e.message) && /Domain state is now undefined/.test(e.message));
      assert.deepEqual(a.t.commands.filter((c) => c[0] === 'xl' && ['destroy', 'save', 'rename', 'unpause'].includes(c[1]!)), [
        ['xl', 'save', '-c', AWAY, `/var/lib/xen/${NAME}.settle`],
        ['xl', 'rename', AWAY, NAME],
      ]);
      assert.ok(a.t.commands.some((c) => c[0] === 'rm' && c.includes(`/var/lib/xen/${NAME}.settle`)), 'the checkpoint file goes');
      assert.equal((await a.d.get(NAME))?.state, 'running');
      assert.ok(!b.t.commands.some((c) => c[1] === 'unpause' || c[1] === 'rename'));
    });

    it('xl save -c fails: our copy is destroyed and started again from its configuration and disks here (memory lost), said so', async () => {
      const a = source({ save: 1 });
      const b = target(false);
      await assert.rejects(a.d.migrate(NAME, b.d), (e: Error) => e instanceof MigrationSettledError
        && e.settlement.runsOn === 'blade1' && !e.settlement.memoryKept
        && /could not be resumed \(xl save -c failed: libxl: error: save failed\): it was destroyed and the VM started again from its disks on blade1 \(its memory state was lost\)/.test(e.message));
      const xl = a.t.commands.filter((c) => (c[0] === 'xl' && ['destroy', 'save', 'rename'].includes(c[1]!)) || c[0] === 'flock');
      assert.deepEqual(xl.slice(0, 2), [['xl', 'save', '-c', AWAY, `/var/lib/xen/${NAME}.settle`], ['xl', 'destroy', AWAY]]);
      assert.deepEqual(xl[2]!.slice(0, 5), ['flock', '-n', '-E', '75', `${RUN}/${NAME}.cfg.lock`]);
      assert.deepEqual(xl[2]!.slice(-3), configDiskPaths(cfg), 'its disks from the configuration it ran with');
      assert.equal((await a.d.get(NAME))?.state, 'running');
    });

    it('settling fails part way (the target\'s complete copy cannot be renamed): a MigrationStrandedError, not a failure that would say the VM runs on the source; both copies kept', async () => {
      const a = source();
      const b = target(true, true);
      await assert.rejects(a.d.migrate(NAME, b.d), (e: Error) => e instanceof MigrationStrandedError && !(e instanceof MigrationFailedError)
        && /failed and settling it failed: .*renaming the complete copy default\.stripes-0--incoming on blade2 failed: libxl: error: rename timed out/.test(e.message));
      assert.ok(!b.t.commands.some((c) => c[0] === 'xl' && c[1] === 'destroy'), 'the target\'s complete copy is not destroyed');
      assert.ok(!a.t.commands.some((c) => c[0] === 'xl' && ['destroy', 'save'].includes(c[1]!)), 'nor ours');
      assert.deepEqual(await a.d.get(NAME), { name: NAME, state: 'paused', detail: 'migratedaway', pid: 7, vcpus: 1, memoryMiB: 256 }, 'listed stranded: the migration plan settles it again');
    });

    it('xl died before its point of no return, our copy suspended under its own name (marker kept): listed stranded, resumed here by xl save -c, the target\'s copy never trusted', async () => {
      const a = source({ suspended: true });
      const b = target(true);
      assert.deepEqual(await a.d.get(NAME), { name: NAME, state: 'paused', detail: 'migrating-suspended', pid: 7, vcpus: 1, memoryMiB: 256 });
      const s = await a.d.settleMigration(NAME, b.d);
      assert.deepEqual({ ...s, message: undefined }, { runsOn: 'blade1', movedToTarget: false, memoryKept: true, message: undefined });
      assert.match(s!.message, /before its point of no return, default\.stripes-0 left suspended on blade1; its copy on blade2 was removed: the suspended copy was resumed on blade1 \(xl save -c\)/);
      assert.deepEqual(b.t.commands.filter((c) => c[0] === 'xl' && ['rename', 'unpause', 'destroy'].includes(c[1]!)), [['xl', 'destroy', `${NAME}--incoming`]]);
      assert.deepEqual(a.t.commands.filter((c) => c[0] === 'xl' && ['destroy', 'save', 'rename'].includes(c[1]!)), [['xl', 'save', '-c', NAME, `/var/lib/xen/${NAME}.settle`]]);
      assert.equal((await a.d.get(NAME))?.state, 'running');
    });

    it('settleMigration after the manager that ran xl died: nothing to settle while xl still sends it or nothing is stranded', async () => {
      const a = source({ stranded: true, xlRunning: 1 });
      const b = target(true);
      assert.equal(await a.d.settleMigration(NAME, b.d), undefined, 'an xl migrate of it still runs');
      const s = await a.d.settleMigration(NAME, b.d);
      assert.deepEqual({ ...s, message: undefined }, { runsOn: 'blade2', movedToTarget: true, memoryKept: true, message: undefined });
      assert.match(s!.message, /blade2 had the whole domain \(default\.stripes-0--incoming, left paused by its xl migrate-receive\)/);
      assert.equal(await a.d.settleMigration(NAME, b.d), undefined, 'settled: nothing left');
    });
  });

  it('readConsole reads the log xenconsoled keeps under the incoming name after a live migration', async () => {
    const { t, d } = xenNode('blade2');
    t.answer(['sh', '-c'], ok('5\nhello'));
    assert.equal((await d.readConsole('default.stripes-0')).text, 'hello');
    assert.deepEqual(t.commands.at(-1)!.slice(-2), [CONSOLE, CONSOLE_IN]);
  });
});
