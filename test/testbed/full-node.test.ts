// Full testbed nodes without booting one: the QEMU command line each node gets and the checks on
// the options. The nodes themselves boot in full-testbed.full.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fullNodeState, fullTestbedState, NODE_CPU_MODEL, qemuArgv } from '../../hack/lib/full-node.js';

const ROOT = resolve(import.meta.dirname, '../..');

function testbed(dir: string) {
  const full = fullTestbedState(dir, {});
  return {
    dir, id: 'a1b2c3', bridgeNetns: 'vl-a1b2c3-br', sanDir: join(dir, 'san'), identityFile: join(dir, 'id_ed25519'), full,
    nodes: [0, 1].map((i) => {
      const stateDir = join(dir, 'nodes', `blade${i + 1}`);
      return { name: `blade${i + 1}`, address: `198.18.7.${11 + i}`, port: 22, stateDir, full: fullNodeState('a1b2c3', stateDir, i) };
    }),
  };
}
const image = { xen: '/img/xen', kernel: '/img/vmlinuz', initrd: '/img/initrd.img' };
const opt = (argv: string[], name: string): string[] => argv.flatMap((a, i) => (a === name ? [argv[i + 1]!] : []));

describe('full testbed nodes: QEMU command line and options', () => {
  it('gives every node the same CPU model and disks in the same order, the SAN shared raw and uncached', () => {
    const tb = testbed('/tmp/tb-full');
    const [a, b] = [qemuArgv(tb, image, 0), qemuArgv(tb, image, 1)];
    for (const argv of [a, b]) {
      assert.deepEqual(opt(argv, '-cpu'), [NODE_CPU_MODEL]);
      assert.deepEqual(opt(argv, '-accel').map((x) => x.split(',')[0]), ['tcg']);
      assert.deepEqual(opt(argv, '-kernel'), ['/img/xen']);
      assert.deepEqual(opt(argv, '-device').filter((d) => d.startsWith('virtio-blk-pci')).map((d) => /serial=([^,]+)/.exec(d)?.[1]), ['vl-root', 'vl-config', 'vl-san']);
      const san = opt(argv, '-drive').find((d) => d.includes('id=san'))!;
      assert.equal(san, 'file=/tmp/tb-full/san.img,format=raw,if=none,id=san,file.locking=off,cache=none');
      assert.ok(opt(argv, '-device').includes('virtio-blk-pci,drive=san,serial=vl-san,share-rw=on'));
      assert.match(opt(argv, '-append')[0]!, /dom0_mem=768M,max:768M/);
    }
    // each node its own overlay, config disk, tap, MAC and address
    const own = (argv: string[]) => [opt(argv, '-drive')[0], opt(argv, '-drive')[1], opt(argv, '-netdev')[0], opt(argv, '-device').find((d) => d.startsWith('virtio-net'))];
    for (const [x, y] of own(a).map((v, i) => [v, own(b)[i]])) assert.notEqual(x, y);
    assert.match(opt(a, '-initrd')[0]!, /^\/img\/vmlinuz console=hvc0 root=\/dev\/vda rw quiet vl\.name=blade1 vl\.addr=198\.18\.7\.11\/24 vl\.san=\/tmp\/tb-full\/san,\/img\/initrd\.img$/);
  });

  it('checks memory, vCPUs, SAN size and the directory, naming the flag', () => {
    assert.throws(() => fullTestbedState('/tmp/a,b', {}), /must not contain commas or white space/);
    assert.throws(() => fullTestbedState('/tmp/a b', {}), /must not contain commas or white space/);
    assert.throws(() => fullTestbedState('/tmp/x', { memoryMiB: 256 }), /--node-memory-mib must be an integer from 768/);
    assert.throws(() => fullTestbedState('/tmp/x', { cpus: 0 }), /--node-cpus must be an integer from 1/);
    assert.throws(() => fullTestbedState('/tmp/x', { sanMiB: 1 }), /--san-mib must be an integer from 16/);
    assert.deepEqual({ ...fullTestbedState('/tmp/x', { memoryMiB: 2048, cpus: 2 }), imageDir: '' },
      { imageDir: '', sanImage: '/tmp/x/san.img', sanMiB: 1024, memoryMiB: 2048, dom0MiB: 1024, cpus: 2 });
  });

  it('the CLI refuses bad --full options before it makes anything', async () => {
    const base = await mkdtemp(join(tmpdir(), 'vl-tbf-'));
    try {
      const dir = join(base, 'tb');
      const r = spawnSync(join(ROOT, 'hack/testbed'), ['up', '--full', '--nodes', '1', '--node-memory-mib', '100', '--dir', dir], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /--node-memory-mib must be an integer from 768 to 65536, got 100/);
      assert.equal(existsSync(join(dir, 'testbed.json')), false);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
