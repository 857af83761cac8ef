// Full testbed nodes for real (tier: *.full.test.ts, boots QEMU machines): `hack/testbed up --full`
// with two nodes, each a QEMU (TCG) machine booting Xen 4.17 with the Debian dom0 of
// hack/node-image, booted once for the whole file. A real vc-manager (nodes controller) probes
// them over SSH with pinned host keys; the SAN is one raw image both nodes see as a block device.
// Needs root and the node image (built on first use, ~3 min; then cached).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { PhysicalNode } from '../../api/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { execOk, HostKeyMismatchError } from '../../drivers/transport/types.js';
import { SAN_DEVICE } from '../../hack/lib/full-node.js';
import { startNodesManager, type NodesManager } from '../../hack/lib/nodes-manager.js';
import { pidAlive, readTestbed, testbedDown, testbedId, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { ocfs2OnFullNodesCases } from '../shared-fs/ocfs2-cases.js';

const local = new LocalTransport();
// a node under TCG on a loaded machine takes seconds per process and per SSH handshake
const SSH_TIMEOUT_S = 120;
const SLOW = { connectTimeoutMs: SSH_TIMEOUT_S * 1000, keepaliveIntervalMs: 40_000 };

describe('hack/testbed up --full: two QEMU nodes booting Xen 4.17 with a Debian dom0', function () {
  this.timeout(900_000);
  let base: string;
  let dir: string;
  let tb: TestbedState;
  let manager: NodesManager | undefined;
  const ssh: SshTransport[] = [];

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'vl-full-'));
    dir = join(base, 'tb');
    const t0 = Date.now();
    tb = await testbedUp({ nodes: 2, dir, full: { bootTimeoutMs: 600_000 } });
    process.stderr.write(`      (2 full nodes answered SSH ${((Date.now() - t0) / 1000).toFixed(1)} s after up)\n`);
    for (const n of tb.nodes) {
      ssh.push(new SshTransport({ host: n.name, address: n.address, port: n.port, identityFile: tb.identityFile, hostKey: n.hostKey, ...SLOW }));
    }
  });
  after(async () => {
    await manager?.stop();
    await Promise.all(ssh.map((t) => t.close()));
    await testbedDown(dir).catch(() => {});
    await rm(base, { recursive: true, force: true });
  });

  it('writes physicalnodes.yaml (hypervisor xen, the SAN device) and nodes.json (kind full)', async () => {
    const nodes = JSON.parse(await readFile(join(dir, 'nodes.json'), 'utf8')) as { name: string; kind: string; address: string; hostKey: string }[];
    assert.deepEqual(nodes.map((n) => [n.name, n.kind]), [['blade1', 'full'], ['blade2', 'full']]);
    assert.equal(new Set(nodes.map((n) => n.hostKey)).size, 2);
    const docs = parseAllDocuments(await readFile(join(dir, 'physicalnodes.yaml'), 'utf8')).map((d) => d.toJS() as PhysicalNode);
    for (const pn of docs) {
      assert.equal(pn.spec!.hypervisor, 'xen');
      assert.equal(pn.spec!.sanDevice, SAN_DEVICE);
      assert.equal(pn.spec!.storageRoot, tb.sanDir);
      assert.equal(pn.spec!.runRoot, undefined, 'a full node has its own /run');
    }
  });

  it('both nodes become Ready in vc-manager, with cores, memory and version as Xen reports them and the SAN device', async () => {
    manager = await startNodesManager(base, join(dir, 'physicalnodes.yaml'), { sshTimeoutSeconds: SSH_TIMEOUT_S });
    await manager.waitReady(['blade1', 'blade2'], 300_000);
    for (const pn of await manager.nodes()) {
      assert.match(pn.status!.hypervisorVersion ?? '', /^Xen 4\.17\.\d+/);
      assert.equal(pn.status!.observed?.cores, tb.full!.cpus);
      // Xen's total_memory: the machine's, a little under what QEMU gives it, far above dom0's share
      assert.ok(pn.status!.observed!.memoryMiB! > tb.full!.dom0MiB && pn.status!.observed!.memoryMiB! <= tb.full!.memoryMiB, String(pn.status!.observed!.memoryMiB));
      assert.deepEqual(pn.status!.san, { device: SAN_DEVICE, sizeBytes: tb.full!.sanMiB * 1048576 });
    }
  });

  it('pins the host keys: a node presenting another key is refused', async () => {
    const [a, b] = tb.nodes;
    const wrong = new SshTransport({ host: 'wrong', address: a!.address, port: a!.port, identityFile: tb.identityFile, hostKey: b!.hostKey, ...SLOW });
    try {
      await assert.rejects(wrong.exec(['true'], { timeoutMs: 180_000 }), HostKeyMismatchError);
    } finally {
      await wrong.close();
    }
    // and the right key logs in to the node's own kernel, not this machine's
    assert.equal((await execOk(ssh[0]!, ['hostname'], { timeoutMs: 180_000 })).trim(), 'blade1');
    assert.notEqual((await execOk(ssh[0]!, ['cat', '/proc/sys/kernel/random/boot_id'], { timeoutMs: 180_000 })).trim(), (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim());
  });

  it('`xl list` shows Domain-0 on each node', async () => {
    for (const t of ssh) {
      const out = await execOk(t, ['xl', 'list'], { timeoutMs: 180_000 });
      assert.match(out, /^Domain-0\s+0\s+\d+\s+\d+\s/m, out);
    }
  });

  it('a block written with O_DIRECT on the SAN disk from one node is read back from the other', async () => {
    const block = randomBytes(4096).toString('hex').slice(0, 4096);
    const at = 1000 + Math.floor(Math.random() * 1000); // a 4 KiB block index
    const read = ['sh', '-c', 'dd if="$1" bs=4096 count=1 skip="$2" iflag=direct status=none', 'sh', SAN_DEVICE, String(at)];
    const before = await execOk(ssh[1]!, read, { timeoutMs: 180_000 });
    assert.notEqual(before, block);
    // the block goes to node 1 as a file (over SSH, from the test), then onto the disk with O_DIRECT
    await execOk(ssh[0]!, ['sh', '-c', 'printf %s "$1" > /tmp/block && dd if=/tmp/block of="$2" bs=4096 count=1 seek="$3" oflag=direct conv=notrunc status=none', 'sh', block, SAN_DEVICE, String(at)], { timeoutMs: 180_000 });
    const after = await execOk(ssh[1]!, read, { timeoutMs: 180_000 });
    assert.equal(after, block);
  });

  // o2cb on two nodes (one joining), OCFS2 on the SAN mounted on both, kernel NFS re-export, teardown
  ocfs2OnFullNodesCases(() => ({ nodes: ssh, names: tb.nodes.map((n) => n.name), addresses: tb.nodes.map((n) => n.address), sanDevice: SAN_DEVICE }));

  it('down (even with testbed.json torn) leaves no QEMU, namespace, loop device or mount, and is idempotent', async () => {
    const pids = tb.nodes.map((n) => n.full!.qemuPid);
    assert.ok(pids.every((p) => p > 0 && pidAlive(p)));
    await manager?.stop();
    manager = undefined;
    await Promise.all(ssh.map((t) => t.close()));
    // a crash while testbed.json was being written: down works from the namespace names
    await writeFile(join(dir, 'testbed.json'), '{"version": 1, "nod');
    await testbedDown(dir);
    await testbedDown(dir);
    assert.deepEqual(pids.filter(pidAlive), []);
    const netns = await execOk(local, ['ip', 'netns', 'list']);
    assert.ok(!netns.includes(`vl-${testbedId(dir)}-`), netns);
    const loops = await execOk(local, ['losetup', '-a']);
    assert.ok(!loops.includes(dir), loops);
    assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(dir));
    const qemus = await execOk(local, ['ps', '-eo', 'args']);
    assert.ok(!qemus.split('\n').some((l) => l.includes(`vl-${testbedId(dir)}-`)), 'no QEMU of this testbed is left');
    assert.equal(existsSync(dir), false);
    assert.equal(await readTestbed(dir), undefined);
  });
});
