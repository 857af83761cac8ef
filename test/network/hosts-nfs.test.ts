// The network/hosts controller serving shared storage over NFS, on real testbed nodes (network
// namespaces with real sshd): real nfs-ganesha, ip and nft inside the nodes. The cluster's objects
// are given in a small in-memory cache; the PhysicalNode status writes are kept as they are made.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import type { Transport } from '../../drivers/transport/types.js';
import { NfsServerDriver } from '../../drivers/nfs/nfs-server.js';
import { HostNetworkDriver } from '../../drivers/network/host-network.js';
import { AppliedNetworks, networkHostController } from '../../reconcilers/network/controller.js';
import type { ApiObject, PhysicalNode } from '../../api/types.js';
import type { ObjectRef } from '../../api/store/types.js';
import type { CacheReader, ReconcileContext } from '../../controllers/types.js';
import { getCondition } from '../../api/conditions.js';
import { silentLogger } from '../../controllers/log.js';

describe('network/hosts controller: NFS exports on testbed nodes', function () {
  this.timeout(120_000);
  let dir: string;
  let tb: TestbedState | undefined;
  const transports = new Map<string, Transport>();
  const objects: ApiObject[] = [];
  const events: { name: string; type: string; reason: string; message: string }[] = [];
  const cache: CacheReader = {
    get: <T extends ApiObject>(ref: ObjectRef) => objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name && (o.metadata.namespace ?? undefined) === ref.namespace) as T | undefined,
    list: <T extends ApiObject>(kind: string) => objects.filter((o) => o.kind === kind) as T[],
  };
  const put = (o: ApiObject) => {
    const i = objects.findIndex((x) => x.kind === o.kind && x.metadata.name === o.metadata.name && x.metadata.namespace === o.metadata.namespace);
    if (i >= 0) objects[i] = o;
    else objects.push(o);
  };
  const ctx = {
    cache,
    store: { updateStatus: async (o: ApiObject) => (put(o), o) },
    events: { record: (o: { metadata: { name: string } }, type: string, reason: string, message: string) => events.push({ name: o.metadata.name, type, reason, message }) },
    log: silentLogger(),
    signal: new AbortController().signal,
  } as unknown as ReconcileContext;
  const runRoot = (name: string) => join(dir, 'run', name);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vl-hosts-nfs-'));
    tb = await testbedUp({ nodes: 2, dir });
    for (const n of tb.nodes) {
      transports.set(n.name, new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: tb.identityFile, hostKey: n.hostKey }));
      put({
        kind: 'PhysicalNode', metadata: { name: n.name },
        spec: { address: n.address, runRoot: runRoot(n.name) },
        status: { conditions: [{ type: 'Ready', status: 'True', reason: 'Probed', message: '', lastTransitionTime: new Date().toISOString() }] },
      } as unknown as ApiObject);
    }
  });
  after(async () => {
    for (const n of tb?.nodes ?? []) {
      const t = transports.get(n.name)!;
      await new NfsServerDriver(t, { runRoot: runRoot(n.name) }).stopServer().catch(() => undefined);
      await new HostNetworkDriver(t).teardown().catch(() => undefined);
      await t.close();
    }
    if (tb) await testbedDown(dir);
    await rm(dir, { recursive: true, force: true });
  });

  const vc = (name: string, subnet: string, filesystem?: 'nfs' | 'ocfs2') =>
    ({ kind: 'VirtualCluster', metadata: { name, namespace: 'lab', uid: name }, spec: filesystem ? { sharedStorage: { sizeGiB: 1, filesystem } } : {}, status: { subnet } }) as unknown as ApiObject;
  const vn = (cluster: string, index: number, host: string) =>
    ({ kind: 'VirtualNode', metadata: { name: `${cluster}-${index}`, namespace: 'lab' }, spec: { cluster, index, physicalNode: host, vcpus: 1, memoryMiB: 64 }, status: {} }) as unknown as ApiObject;
  const sharedVol = (cluster: string, path: string) =>
    ({ kind: 'Volume', metadata: { name: `${cluster}-shared`, namespace: 'lab' }, spec: { role: 'shared', cluster, sizeGiB: 1, driver: 'qcow2' }, status: { phase: 'Ready', path } }) as unknown as ApiObject;
  const node = (name: string) => cache.get<PhysicalNode>({ kind: 'PhysicalNode', name })!;

  it('serves an nfs VC where its VMs are, and reports a failure without breaking the network of other VCs', async () => {
    const [n1, n2] = tb!.nodes.map((n) => n.name) as [string, string];
    const applied = new AppliedNetworks();
    const ctl = networkHostController(cache, { transports: { get: (pn) => transports.get(pn.metadata.name)! } }, applied);
    const reconcile = (name: string) => ctl.reconcile({ kind: 'PhysicalNode', name }, ctx);
    const share = join(dir, 'san', 'n-shared');
    put(vc('n', '10.200.0.0/24', 'nfs'));
    put(vc('plain', '10.200.1.0/24'));
    put(vn('n', 0, n1));
    put(vn('plain', 0, n1));
    put(vn('plain', 1, n2));
    // The shared volume has a path, but its directory is not there (yet).
    put(sharedVol('n', share));

    await reconcile(n1);
    const failed = getCondition(node(n1).status?.conditions, 'NfsReady');
    assert.equal(failed?.status, 'False');
    assert.equal(failed?.reason, 'NfsExportFailed');
    assert.match(failed!.message, /does not serve \d+ \/vc\/lab\/n /);
    assert.ok(events.some((e) => e.name === 'n' && e.type === 'Warning' && e.reason === 'NfsExportFailed'), 'the VC is told');
    assert.ok(applied.has(n1, 'lab.plain-0') && applied.has(n1, 'lab.n-0'), 'the network is in place all the same');
    assert.ok(await new HostNetworkDriver(transports.get(n1)!).hasVm('lab.plain-0'));

    await mkdir(share, { recursive: true });
    await reconcile(n1);
    const ok = getCondition(node(n1).status?.conditions, 'NfsReady');
    assert.equal(ok?.status, 'True', ok?.message);
    assert.equal(ok?.message, 'serving /vc/lab/n to 10.200.0.0/24 on TCP 2049');
    const served = await new NfsServerDriver(transports.get(n1)!, { runRoot: runRoot(n1) }).list();
    assert.deepEqual(served.exports.map((e) => [e.pseudo, e.path, e.clients]), [['/vc/lab/n', share, '10.200.0.0/24']]);

    // n2 hosts only a VC without NFS: no server, no condition.
    await reconcile(n2);
    assert.equal(getCondition(node(n2).status?.conditions, 'NfsReady'), undefined);
    assert.equal((await new NfsServerDriver(transports.get(n2)!, { runRoot: runRoot(n2) }).list()).pid, undefined);

    // A migration of n-0 to n2: the target serves the share before the VM arrives.
    put({ kind: 'Migration', metadata: { name: 'm', namespace: 'lab' }, spec: { virtualNode: 'n-0', targetNode: n2 }, status: { phase: 'Pending' } } as unknown as ApiObject);
    await reconcile(n2);
    assert.deepEqual((await new NfsServerDriver(transports.get(n2)!, { runRoot: runRoot(n2) }).list()).exports.map((e) => e.pseudo), ['/vc/lab/n']);
    assert.ok(events.some((e) => e.name === n2 && e.reason === 'NetworkChanged' && /nfs server started serving \/vc\/lab\/n/.test(e.message)));

    // The VC goes: both servers stop.
    objects.splice(0, objects.length, ...objects.filter((o) => !(o.metadata.namespace === 'lab' && (o.metadata.name.startsWith('n') || o.metadata.name === 'm'))));
    await reconcile(n1);
    await reconcile(n2);
    for (const n of [n1, n2]) {
      assert.equal((await new NfsServerDriver(transports.get(n)!, { runRoot: runRoot(n) }).list()).pid, undefined, `no NFS server left on ${n}`);
    }
    assert.equal(getCondition(node(n1).status?.conditions, 'NfsReady')?.reason, 'NothingToServe');
  });
});
