// A whole VirtuaLinux installation on this machine, for the end-to-end tests and the demo: a
// testbed of physical nodes (network namespaces with real sshd, a shared SAN directory), the
// reference guest image, the embedded store, and a real `vc-manager` process. stop() removes
// everything it made (domains, manager, testbed, files), also after a failure part-way.

import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import { domainName } from '../../api/names.js';
import type { GuestAgentReply } from '../../drivers/hypervisor/types.js';
import { main as vcctlMain } from '../../cli/vcctl.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { HypervisorDrivers } from '../../reconcilers/runtime/hosts.js';
import { buildGuestImage, type GuestImage } from './guest-image.js';
import { etcdClusterDown, etcdClusterUp } from './etcd-cluster.js';
import { testbedDown, testbedUp, type TestbedState } from './testbed.js';
import { VC_MANAGER_NODE_FLAGS } from '../../operator/node-flags.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface HarnessOptions {
  nodes: number;
  /** Work directory; default a fresh temporary one (removed by stop()). */
  dir?: string;
  /** Where the guest image is built once and reused; default ~/.cache/virtualinux/guest. */
  imageDir?: string;
  /** Capacity written for each node. */
  cores?: number;
  memoryMiB?: number;
  /** vc-manager's extra flags. */
  managerArgs?: string[];
  /**
   * The store: the embedded one (default), or a 3-member etcd cluster made by hack/etcd-cluster
   * (TLS, client certificates, one network namespace per member) under DIR/etcd. Default from
   * $VL_E2E_STORE (`embedded` or `etcd-cluster`), so the end-to-end tests run on either unchanged.
   */
  store?: 'embedded' | 'etcd-cluster';
  /**
   * Full testbed nodes (QEMU machines booting Xen with a Debian dom0: `hack/testbed up --full`)
   * instead of namespace nodes. The guest's kernel, initrd and image are copied to the shared
   * directory (the dom0s see only that), the OSTemplate `busybox` points there and reports
   * readiness on its console (no agent channel under Xen), and vc-manager gets FULL_NODE_MANAGER_ARGS.
   */
  full?: boolean;
  /** With `full`: the SAN disk's size in MiB (default full-node.ts's); an OCFS2 shared volume of 1 GiB needs more than 1 GiB. */
  sanMiB?: number;
  log?: (line: string) => void;
}

/**
 * vc-manager on full nodes: a TCG dom0 under load (other testbeds on 2 cores) took over 60 s to
 * answer a probe, and HA then fenced (killed) both nodes after the default 30 s grace; a 5 s lease
 * was lost while the event loop waited.
 */
const FULL_NODE_MANAGER_ARGS = ['--ssh-timeout', '120', '--node-failure-grace', '3600', '--lease-ttl', '30'];
/** SSH to full nodes: a TCG dom0 under load takes many seconds per handshake. */
const FULL_NODE_SSH = { connectTimeoutMs: 120_000, keepaliveIntervalMs: 40_000 };

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ClusterHarness {
  dir: string;
  testbed: TestbedState;
  image: GuestImage;
  storeUrl: string;
  store: Store;
  managerLog: string;
  /** Runs vcctl (in this process) against the harness's store. */
  vcctl(args: string[], stdin?: string): Promise<RunResult>;
  /** Every QEMU domain on every node, by node. */
  domains(): Promise<Map<string, { name: string; state: string; pid?: number }[]>>;
  /**
   * Asks the guest of VirtualNode `name` (namespace default) over its agent channel, on the node
   * its status names: its reply (uptime included), or undefined when it does not answer.
   */
  pingGuest(name: string, timeoutMs?: number): Promise<GuestAgentReply | undefined>;
  /** Stops the manager (SIGTERM, then SIGKILL) and starts it again: a manager crash or restart. */
  restartManager(signal?: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export async function startClusterHarness(opts: HarnessOptions): Promise<ClusterHarness> {
  const log = opts.log ?? (() => {});
  const own = !opts.dir;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'vl-cluster-'));
  mkdirSync(dir, { recursive: true });
  let testbed: TestbedState | undefined;
  let store: Store | undefined;
  let manager: ChildProcess | undefined;
  const transports = new TransportCache(opts.full ? { ssh: FULL_NODE_SSH } : undefined);
  const managerLog = join(dir, 'vc-manager.log');
  const storeKind = opts.store ?? (process.env.VL_E2E_STORE === 'etcd-cluster' ? 'etcd-cluster' : 'embedded');
  const etcdDir = join(dir, 'etcd');
  let storeUrl = `file:${join(dir, 'store.db')}`;

  const startManager = (): ChildProcess => {
    // From the sources (not dist/), so the manager always matches the code under test.
    const argv = [...VC_MANAGER_NODE_FLAGS, '--import', 'tsx', join(ROOT, 'operator/vc-manager.ts')];
    const out = createWriteStream(managerLog, { flags: 'a' });
    const p = spawn(process.execPath, [...argv, '--store', storeUrl, '--metrics-addr', '127.0.0.1:0', '--identity', 'harness', '--lease-ttl', '5', ...(opts.full ? FULL_NODE_MANAGER_ARGS : []), ...(opts.managerArgs ?? [])], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout!.pipe(out);
    p.stderr!.pipe(out);
    return p;
  };

  const stopManager = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const p = manager;
    manager = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };

  const nodes = async (): Promise<PhysicalNode[]> => (store ? (await store.list<PhysicalNode>('PhysicalNode')).items : []);

  const harness: Partial<ClusterHarness> = {};
  const stop = async (): Promise<void> => {
    await stopManager();
    // Domains first (they hold files on the SAN and taps in the nodes), then the testbed.
    try {
      const drivers = new HypervisorDrivers(transports, 'tcg');
      for (const pn of await nodes()) {
        const d = drivers.get(pn);
        for (const dom of await d.list().catch(() => [])) await d.destroy(dom.name).catch(() => {});
      }
    } catch {
      // the testbed may be half made; testbedDown below removes what remains
    }
    await transports.closeAll();
    await store?.close().catch(() => {});
    if (testbed) await testbedDown(testbed.dir).catch((e) => log(`testbed down: ${(e as Error).message}`));
    if (storeKind === 'etcd-cluster') await etcdClusterDown(etcdDir).catch((e) => log(`etcd cluster down: ${(e as Error).message}`));
    // For a post-mortem of a failed run: VL_KEEP_MANAGER_LOG=FILE keeps the manager's log there.
    if (process.env.VL_KEEP_MANAGER_LOG) {
      try {
        copyFileSync(join(dir, 'vc-manager.log'), process.env.VL_KEEP_MANAGER_LOG);
      } catch {
        // no log was written
      }
    }
    if (own) rmSync(dir, { recursive: true, force: true });
  };

  try {
    log(`testbed: ${opts.nodes} physical nodes (${opts.full ? "QEMU machines running Xen with a Debian dom0" : "network namespaces, real sshd"}) under ${dir}`);
    testbed = await testbedUp({ nodes: opts.nodes, dir: join(dir, 'testbed'), cores: opts.cores, memoryMiB: opts.memoryMiB, ...(opts.full ? { full: { bootTimeoutMs: 600_000, ...(opts.sanMiB ? { sanMiB: opts.sanMiB } : {}) } } : {}) });
    const imageDir = opts.imageDir ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'virtualinux', 'guest');
    log(`guest image: ${imageDir} (built once, then reused)`);
    const image = buildGuestImage({ out: imageDir, log });
    if (storeKind === 'etcd-cluster') {
      log(`store: a 3-member etcd cluster (TLS, client certificates, a network namespace per member) under ${etcdDir}`);
      const ec = await etcdClusterUp({ dir: etcdDir, members: 3, log });
      storeUrl = readFileSync(ec.storeUrlFile, 'utf8').trim();
    }
    store = await openStore(storeUrl);

    const vcctl = async (args: string[], stdin = ''): Promise<RunResult> => {
      const out = new PassThrough();
      const err = new PassThrough();
      let stdout = '';
      let stderr = '';
      out.on('data', (d: Buffer) => (stdout += d.toString()));
      err.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await vcctlMain(args, { stdout: out, stderr: err, stdin: Readable.from([stdin]), env: { ...process.env, VCCTL_STORE: storeUrl } });
      return { code, stdout, stderr };
    };
    for (const f of [join(testbed.dir, 'physicalnodes.yaml'), opts.full ? xenTemplate(image, testbed.sanDir) : image.ostemplate]) {
      const r = await vcctl(['apply', '-f', f]);
      if (r.code !== 0) throw new Error(`vcctl apply -f ${f}: ${r.stderr}`);
    }
    log(`vc-manager: starting on the ${storeKind === 'etcd-cluster' ? '3-member etcd cluster' : 'embedded store'}`);
    manager = startManager();
    // Placement only uses Ready nodes: start from a cluster whose nodes are all probed Ready.
    const readyWithinS = opts.full ? 600 : 120;
    const deadline = Date.now() + readyWithinS * 1000;
    for (;;) {
      const pns = await nodes();
      if (pns.length === opts.nodes && pns.every((p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))) break;
      if (manager.exitCode !== null) throw new Error(`vc-manager exited (${manager.exitCode}); see ${managerLog}`);
      if (Date.now() > deadline) throw new Error(`the physical nodes did not become Ready in ${readyWithinS} s; see ${managerLog}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    log(`physical nodes Ready: ${(await nodes()).map((p) => p.metadata.name).join(', ')}`);

    Object.assign(harness, {
      dir, testbed, image, storeUrl, store, managerLog, vcctl, stop,
      async domains() {
        const drivers = new HypervisorDrivers(transports, 'tcg');
        const out = new Map<string, { name: string; state: string; pid?: number }[]>();
        for (const pn of await nodes()) out.set(pn.metadata.name, (await drivers.get(pn).list()).map((d) => ({ name: d.name, state: d.state, pid: d.pid })));
        return out;
      },
      async pingGuest(name: string, timeoutMs = 5_000) {
        const vn = await store!.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
        const pn = (await nodes()).find((p) => p.metadata.name === vn.status?.host);
        const driver = pn ? new HypervisorDrivers(transports, 'tcg').get(pn) : undefined;
        return driver?.pingGuestAgent?.(domainName('default', name), timeoutMs);
      },
      async restartManager(signal: NodeJS.Signals = 'SIGTERM') {
        await stopManager(signal);
        manager = startManager();
      },
    } satisfies ClusterHarness);
    return harness as ClusterHarness;
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The reference guest's OSTemplate for full nodes: its kernel, initrd and image copied to the
 * testbed's shared directory (mounted at the same path in every dom0), readiness from the console's
 * READY line (the agent talks over virtio-serial, which a Xen PV guest lacks). Returns the file.
 */
function xenTemplate(image: GuestImage, sanDir: string): string {
  const dir = join(sanDir, 'images');
  mkdirSync(dir, { recursive: true });
  const to = (f: string): string => {
    const dest = join(dir, basename(f));
    copyFileSync(f, dest);
    return dest;
  };
  const doc = {
    apiVersion: 'virtualinux.org/v1alpha1',
    kind: 'OSTemplate',
    metadata: { name: 'busybox' },
    spec: {
      image: { path: to(image.image), format: 'qcow2' },
      boot: { kernel: to(image.kernel), initrd: to(image.initrd), cmdline: image.cmdline },
      revision: 1,
      guestAgent: false,
    },
  };
  const file = join(dir, 'ostemplate.yaml'); // JSON is YAML
  writeFileSync(file, JSON.stringify(doc));
  return file;
}
