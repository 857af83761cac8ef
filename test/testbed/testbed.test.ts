// hack/testbed: the CLI and the library, on this machine (root). Probes only from inside the
// testbed namespaces, and to the nodes' sshd from the root side the testbed made for it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { PhysicalNode } from '../../api/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { execOk } from '../../drivers/transport/types.js';
import { nodeExec, readTestbed, testbedDown, testbedId, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { alive, until } from '../transport/helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const local = new LocalTransport();

function cli(args: string[], opts: { asNobody?: boolean } = {}) {
  // Not root: a new user namespace, where the process is uid 65534 with no capability in the
  // machine's namespace, yet can still read the checkout wherever it lies (a 0700 temporary
  // directory in CI is closed to a real `nobody`, which would fail before our code runs).
  const argv = opts.asNobody
    ? ['unshare', '--user', join(ROOT, 'hack/testbed'), ...args]
    : [join(ROOT, 'hack/testbed'), ...args];
  return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 90_000 });
}

async function namespacesOf(dir: string): Promise<string[]> {
  const out = await execOk(local, ['ip', 'netns', 'list']);
  return out.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`vl-${testbedId(dir)}-`));
}

describe('hack/testbed', function () {
  this.timeout(120_000);
  let base: string;
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'vl-tb-'));
  });
  after(async () => {
    for (const d of ['cli', 'crash']) await testbedDown(join(base, d)).catch(() => {});
    await rm(base, { recursive: true, force: true });
  });

  it('refuses to run without root, saying so', () => {
    const r = cli(['up', '--nodes', '1', '--dir', join(base, 'nonroot')], { asNobody: true });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /needs root/);
  });

  describe('up --nodes 3 / down through the CLI', () => {
    let dir: string;
    let tb: TestbedState;
    const transports: SshTransport[] = [];
    const ssh = (i: number) => transports[i]!;

    before(async () => {
      dir = join(base, 'cli');
      const r = cli(['up', '--nodes', '3', '--dir', dir]);
      assert.equal(r.status, 0, r.stderr);
      tb = (await readTestbed(dir))!;
      for (const n of tb.nodes) {
        transports.push(new SshTransport({ host: n.name, address: n.address, port: n.port, identityFile: tb.identityFile, hostKey: n.hostKey }));
      }
    });
    after(async () => {
      await Promise.all(transports.map((t) => t.close()));
    });

    it('writes nodes.json and physicalnodes.yaml with pinned, distinct host keys', async () => {
      const nodes = JSON.parse(await readFile(join(dir, 'nodes.json'), 'utf8')) as { name: string; netns: string; address: string; port: number; hostKey: string }[];
      assert.deepEqual(nodes.map((n) => n.name), ['blade1', 'blade2', 'blade3']);
      for (const n of nodes) {
        assert.deepEqual(Object.keys(n).sort(), ['address', 'hostKey', 'name', 'netns', 'port']);
        assert.match(n.address, /^198\.1[89]\.\d+\.\d+$/);
        assert.match(n.hostKey, /^ssh-ed25519 AAAA[A-Za-z0-9+/]+=*$/);
        assert.ok(n.netns.startsWith(`vl-${testbedId(dir)}-`));
      }
      assert.equal(new Set(nodes.map((n) => n.hostKey)).size, 3);
      assert.equal(new Set(nodes.map((n) => n.address)).size, 3);
      const docs = parseAllDocuments(await readFile(join(dir, 'physicalnodes.yaml'), 'utf8')).map((d) => d.toJS() as PhysicalNode);
      assert.deepEqual(docs.map((d) => [d.kind, d.metadata.name]), nodes.map((n) => ['PhysicalNode', n.name]));
      for (const [i, d] of docs.entries()) {
        assert.equal(d.spec?.address, nodes[i]!.address);
        assert.deepEqual(d.spec?.ssh, { port: 22, user: 'root', identityFile: join(dir, 'id_ed25519'), hostKey: nodes[i]!.hostKey });
        assert.equal(d.spec?.storageRoot, join(dir, 'san'));
        assert.equal(d.spec?.hypervisor, 'qemu');
        assert.ok(d.spec!.capacity.cores >= 1 && d.spec!.capacity.memoryMiB > 0);
      }
    });

    it('each node runs its sshd in its namespace, with loopback and no default route', async () => {
      for (const [i, n] of tb.nodes.entries()) {
        const pids = (await execOk(local, ['ip', 'netns', 'pids', n.netns])).split(/\s+/).map(Number);
        assert.ok(pids.includes(n.sshdPid), `${n.name}'s sshd ${n.sshdPid} runs in ${n.netns}`);
        const routes = await execOk(ssh(i), ['ip', 'route', 'show']);
        assert.doesNotMatch(routes, /default/);
        assert.match(await execOk(ssh(i), ['ip', '-o', 'link', 'show', 'lo']), /UP/);
        assert.equal((await ssh(i).exec(['ping', '-c', '1', '-W', '1', '127.0.0.1'])).code, 0);
        // no route out: the kernel refuses before anything is sent
        const out = await ssh(i).exec(['ping', '-c', '1', '-W', '1', '192.0.2.1']);
        assert.notEqual(out.code, 0);
        assert.match(out.stderr, /unreachable/i);
      }
    });

    it("a node's root shell reads none of this machine's ~/.bashrc, which stays as it is here", async () => {
      const rc = join(userInfo().homedir, '.bashrc');
      const before = existsSync(rc) ? await readFile(rc) : undefined;
      for (const i of [0, 1, 2]) {
        // the remote command runs through root's login shell, as every driver command does
        const seen = await ssh(i).exec(['sh', '-c', 'test -e "$1" && wc -c < "$1" || echo absent', 'sh', rc]);
        assert.equal(seen.stdout.trim(), before === undefined ? 'absent' : '0');
      }
      if (before !== undefined) assert.deepEqual(await readFile(rc), before, 'the host keeps its own file');
      const mounts = await readFile('/proc/self/mountinfo', 'utf8');
      assert.ok(!mounts.split('\n').some((l) => l.split(' ')[4] === rc), 'no mount over it leaks into this namespace');
    });

    it('nodes reach each other over TCP (as live migration does) and share the SAN directory', async () => {
      const listener = ssh(2).spawn(['socat', '-u', `TCP-LISTEN:4444,bind=${tb.nodes[2]!.address},reuseaddr`, `CREATE:${join(tb.sanDir, 'from-blade1')}`], { timeoutMs: 30_000 });
      try {
        await until('listener', async () => (await ssh(2).exec(['sh', '-c', 'ss -ltn | grep -q ":4444 "'])).code === 0);
        await execOk(ssh(0), ['sh', '-c', 'echo migration-stream | socat -u STDIN "TCP:$1:4444"', 'sh', tb.nodes[2]!.address]);
        await listener.done;
      } finally {
        listener.kill();
      }
      // written by blade3's socat into the SAN, read on blade2 and on this machine: one filesystem
      assert.equal(await execOk(ssh(1), ['cat', join(tb.sanDir, 'from-blade1')]), 'migration-stream\n');
      assert.equal(await readFile(join(dir, 'san', 'from-blade1'), 'utf8'), 'migration-stream\n');
      assert.equal((await ssh(0).exec(['ping', '-c', '1', '-W', '2', tb.nodes[1]!.address])).code, 0);
    });

    it('down leaves no namespace, process, link or file; a second down is a no-op', async () => {
      const started = ssh(0).spawn(['sh', '-c', 'sleep 600 & echo $!; wait'], { timeoutMs: 0 });
      const stray = await new Promise<number>((r) => started.stdout.once('data', (b: Buffer) => r(Number(b.toString().trim()))));
      started.done.catch(() => {});
      const pids = tb.nodes.map((n) => n.sshdPid);
      const r = cli(['down', '--dir', dir]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(await namespacesOf(dir), []);
      for (const p of [...pids, stray]) await until(`pid ${p} gone`, () => !alive(p), 5000);
      assert.doesNotMatch(await execOk(local, ['ip', '-o', 'link', 'show']), new RegExp(tb.hostVeth));
      assert.doesNotMatch(await execOk(local, ['ip', '-4', 'addr', 'show']), new RegExp(tb.hostAddress.replace(/\./g, '\\.') + '/'));
      assert.equal(existsSync(dir), false);
      const again = cli(['down', '--dir', dir]);
      assert.equal(again.status, 0, again.stderr);
    });
  });

  it('down cleans up after a crash that lost the state file', async () => {
    const dir = join(base, 'crash');
    const tb = await testbedUp({ nodes: 2, dir });
    const stray = await nodeExec(tb.nodes[1]!, ['sh', '-c', 'sleep 600 >/dev/null 2>&1 & echo $!']);
    const strayPid = Number(stray.stdout.trim());
    assert.ok(alive(strayPid));
    await unlink(join(dir, 'testbed.json')); // as if `up` had died before writing it
    await testbedDown(dir);
    assert.deepEqual(await namespacesOf(dir), []);
    for (const p of [strayPid, ...tb.nodes.map((n) => n.sshdPid)]) await until(`pid ${p} gone`, () => !alive(p), 5000);
    assert.doesNotMatch(await execOk(local, ['ip', '-o', 'link', 'show']), new RegExp(tb.hostVeth));
  });
});
