// The probe without the controller runtime: parsing, the status decision, and the real probe
// script over the local transport (this machine has qemu-system-x86_64 and no Xen).
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_VERSION, type PhysicalNode } from '../../api/types.js';
import { getCondition } from '../../api/conditions.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { nextNodeStatus, parseProbeOutput, probeNode, type ProbeResult } from '../../reconcilers/nodes/probe.js';

function physicalNode(name: string, storageRoot: string, over: Partial<PhysicalNode['spec']> = {}): PhysicalNode {
  return {
    apiVersion: API_VERSION,
    kind: 'PhysicalNode',
    metadata: { name, generation: 1 },
    spec: {
      address: '198.18.0.11',
      ssh: { port: 22, user: 'root', hostKey: 'ssh-ed25519 AAAA' },
      capacity: { cores: 1, memoryMiB: 256 },
      hypervisor: 'qemu',
      storageRoot,
      ...over,
    } as PhysicalNode['spec'],
  };
}

const good: ProbeResult = { cores: 4, memoryMiB: 8000, hypervisorVersion: 'QEMU emulator version 7.2.0', storage: 'ok' };
const down: ProbeResult = { failure: { reason: 'Unreachable', message: 'connection refused' } };

describe('PhysicalNode probe', () => {
  it('parses the probe output', () => {
    assert.deepEqual(
      parseProbeOutput('cores 2\nmemkib 2048000\nhypervisor QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nstorage ok\n'),
      { cores: 2, memoryMiB: 2000, hypervisorVersion: 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)', storage: 'ok' },
    );
    assert.deepEqual(parseProbeOutput('cores 2\nmemkib 1024\nhypervisor\nstorage missing\n'), { cores: 2, memoryMiB: 1, storage: 'missing' });
    // a Xen node: memory in MiB from `xl info`, and the SAN device
    assert.deepEqual(parseProbeOutput('cores 1\nmemmib 1535\nhypervisor Xen 4.17.7\nstorage ok\nsan 1073741824\n'),
      { cores: 1, memoryMiB: 1535, hypervisorVersion: 'Xen 4.17.7', storage: 'ok', san: { sizeBytes: 1073741824 } });
    assert.equal(parseProbeOutput('san missing\n').san, 'missing');
  });

  it('a node whose spec names a SAN device is Ready only while the probe finds it, and its size goes to status.san', () => {
    const pn = physicalNode('x', '/san', { hypervisor: 'xen', sanDevice: '/dev/disk/by-id/virtio-vl-san' });
    const ok = nextNodeStatus(pn, { ...good, hypervisorVersion: 'Xen 4.17.7', san: { sizeBytes: 4096 } }, { failures: 0, failureThreshold: 1 });
    assert.equal(getCondition(ok.status.conditions, 'Ready')?.status, 'True');
    assert.match(getCondition(ok.status.conditions, 'Ready')!.message!, /SAN \/dev\/disk\/by-id\/virtio-vl-san 4096 bytes/);
    assert.deepEqual(ok.status.san, { device: '/dev/disk/by-id/virtio-vl-san', sizeBytes: 4096 });
    const gone = nextNodeStatus({ ...pn, status: ok.status }, { ...good, hypervisorVersion: 'Xen 4.17.7', san: 'missing' }, { failures: 0, failureThreshold: 1 });
    assert.equal(getCondition(gone.status.conditions, 'Ready')?.reason, 'SanDeviceMissing');
    assert.equal(gone.status.san, undefined);
    // a node without spec.sanDevice is not asked about one
    assert.equal(getCondition(nextNodeStatus(physicalNode('q', '/san'), good, { failures: 0, failureThreshold: 1 }).status.conditions, 'Ready')?.status, 'True');
  });

  it('a good probe makes the node Ready with what it observed, and says so once', () => {
    const d = nextNodeStatus(physicalNode('n', '/san'), good, { failures: 0, failureThreshold: 3 });
    const ready = getCondition(d.status.conditions, 'Ready');
    assert.equal(ready?.status, 'True');
    assert.equal(ready?.reason, 'Probed');
    assert.equal(ready?.observedGeneration, 1);
    assert.equal(d.status.hypervisorVersion, good.hypervisorVersion);
    assert.deepEqual(d.status.observed, { cores: 4, memoryMiB: 8000 });
    assert.deepEqual(d.events.map((e) => e.reason), ['NodeReady']);
    const again = nextNodeStatus({ ...physicalNode('n', '/san'), status: d.status }, good, { failures: 0, failureThreshold: 3 });
    assert.deepEqual(again.status, d.status);
    assert.deepEqual(again.events, []);
  });

  it('turns NotReady only after failureThreshold consecutive failures; one good probe resets the count', () => {
    let node = physicalNode('n', '/san');
    node = { ...node, status: nextNodeStatus(node, good, { failures: 0, failureThreshold: 3 }).status };
    let failures = 0;
    const step = (p: ProbeResult) => {
      const d = nextNodeStatus(node, p, { failures, failureThreshold: 3 });
      node = { ...node, status: d.status };
      failures = d.failures;
      return { ready: getCondition(d.status.conditions, 'Ready'), events: d.events };
    };
    assert.equal(step(down).ready?.status, 'True');
    assert.equal(step(down).ready?.status, 'True');
    assert.equal(step(good).ready?.status, 'True');
    assert.equal(failures, 0);
    step(down);
    step(down);
    const third = step(down);
    assert.equal(third.ready?.status, 'False');
    assert.equal(third.ready?.reason, 'Unreachable');
    assert.deepEqual(third.events.map((e) => e.reason), ['Unreachable']);
    const back = step(good);
    assert.equal(back.ready?.status, 'True');
    assert.deepEqual(back.events.map((e) => e.reason), ['NodeReady']);
  });

  it('a host key mismatch and a node never Ready are judged at once', () => {
    const ready = physicalNode('n', '/san');
    const withStatus = { ...ready, status: nextNodeStatus(ready, good, { failures: 0, failureThreshold: 3 }).status };
    const mismatch = nextNodeStatus(withStatus, { failure: { reason: 'HostKeyMismatch', message: 'host key mismatch' } }, { failures: 0, failureThreshold: 3 });
    assert.equal(getCondition(mismatch.status.conditions, 'Ready')?.reason, 'HostKeyMismatch');
    assert.equal(getCondition(mismatch.status.conditions, 'Ready')?.status, 'False');
    const fresh = nextNodeStatus(physicalNode('m', '/san'), down, { failures: 0, failureThreshold: 3 });
    assert.equal(getCondition(fresh.status.conditions, 'Ready')?.status, 'False');
  });

  it('warns once when spec.capacity exceeds the real node', () => {
    const node = physicalNode('n', '/san', { capacity: { cores: 64, memoryMiB: 1_000_000 } });
    const d = nextNodeStatus(node, good, { failures: 0, failureThreshold: 3 });
    const w = d.events.find((e) => e.reason === 'CapacityExceedsHost');
    assert.ok(w && w.type === 'Warning');
    assert.match(w.message, /cores 64 exceeds the 4 cores/);
    assert.match(w.message, /memoryMiB 1000000 exceeds the 8000 MiB/);
    const again = nextNodeStatus({ ...node, status: d.status }, good, { failures: 0, failureThreshold: 3, lastCapacityWarning: d.capacityWarning });
    assert.equal(again.events.length, 0);
    assert.equal(getCondition(d.status.conditions, 'Ready')?.status, 'True');
  });

  describe('the real probe script on this machine', () => {
    const t = new LocalTransport({ host: 'probe-test' });
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'vl-probe-'));
    });
    after(async () => {
      await chmod(dir, 0o755).catch(() => {});
      await rm(dir, { recursive: true, force: true });
      await t.close();
    });

    it('finds cores, memory, QEMU and a writable storage root', async () => {
      const p = await probeNode(t, { hypervisor: 'qemu', storageRoot: dir }, { timeoutMs: 20_000 });
      assert.equal(p.failure, undefined);
      assert.ok(p.cores! >= 1);
      assert.ok(p.memoryMiB! > 100);
      assert.match(p.hypervisorVersion ?? '', /^QEMU emulator version \d/);
      assert.equal(p.storage, 'ok');
    });

    it('reports a missing storage root and a missing hypervisor', async () => {
      const missing = await probeNode(t, { hypervisor: 'qemu', storageRoot: join(dir, 'nope') }, { timeoutMs: 20_000 });
      assert.equal(missing.storage, 'missing');
      const d = nextNodeStatus(physicalNode('n', join(dir, 'nope')), missing, { failures: 0, failureThreshold: 1 });
      assert.equal(getCondition(d.status.conditions, 'Ready')?.reason, 'StorageRootMissing');
      const xen = await probeNode(t, { hypervisor: 'xen', storageRoot: dir }, { timeoutMs: 20_000 });
      assert.equal(xen.hypervisorVersion, undefined, 'this machine has no Xen');
      const dx = nextNodeStatus(physicalNode('n', dir, { hypervisor: 'xen' }), xen, { failures: 0, failureThreshold: 1 });
      assert.equal(getCondition(dx.status.conditions, 'Ready')?.reason, 'NoHypervisor');
    });

    it('finds a SAN device that is a block device, with its size, and reports one that is not', async () => {
      const { readdirSync, readFileSync } = await import('node:fs');
      // any block device of this machine with a size (its root disk, typically)
      const dev = readdirSync('/sys/block').find((d) => Number(readFileSync(`/sys/block/${d}/size`, 'utf8')) > 0 && !d.startsWith('loop'));
      assert.ok(dev, 'this machine has a block device');
      const p = await probeNode(t, { hypervisor: 'qemu', storageRoot: dir, sanDevice: `/dev/${dev}` }, { timeoutMs: 20_000 });
      assert.deepEqual(p.san, { sizeBytes: Number(readFileSync(`/sys/block/${dev}/size`, 'utf8')) * 512 });
      const missing = await probeNode(t, { hypervisor: 'qemu', storageRoot: dir, sanDevice: '/dev/null' }, { timeoutMs: 20_000 });
      assert.equal(missing.san, 'missing', '/dev/null is not a block device');
      const none = await probeNode(t, { hypervisor: 'qemu', storageRoot: dir }, { timeoutMs: 20_000 });
      assert.equal(none.san, undefined);
    });

    it('a probe that times out is Unreachable', async () => {
      const slow = { ...t, host: 'slow', exec: (argv: readonly string[], o?: { timeoutMs?: number }) => t.exec(['sleep', '5'], o) };
      const p = await probeNode(slow as unknown as LocalTransport, { hypervisor: 'qemu', storageRoot: dir }, { timeoutMs: 300 });
      assert.equal(p.failure?.reason, 'Unreachable');
      assert.match(p.failure!.message, /timed out after 300 ms/);
    });
  });
});
