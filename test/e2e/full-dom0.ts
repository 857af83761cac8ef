// What the end-to-end files on full Xen nodes share: an SSH transport to each node's dom0 (the
// testbed's identity, its pinned host keys, timeouts a TCG dom0 under load needs), the cluster
// printed after a failed test, and the suite hooks that start and stop both (fullXenSuite).
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';

/** One SshTransport per testbed node, by node name; the caller closes them. */
export function dom0Transports(h: ClusterHarness): Map<string, SshTransport> {
  const out = new Map<string, SshTransport>();
  for (const n of h.testbed.nodes) {
    out.set(n.name, new SshTransport({ host: n.name, address: n.address, port: n.port, user: 'root', identityFile: h.testbed.identityFile, hostKey: n.hostKey, connectTimeoutMs: 120_000, keepaliveIntervalMs: 40_000 }));
  }
  return out;
}

/** `vcctl logs vn/<name>`: its SSH to a loaded TCG dom0 can fail (10 s handshake), so it is tried 3 times, never read as an empty console. */
export async function vmConsole(h: ClusterHarness, name: string): Promise<string> {
  let r = await h.vcctl(['logs', `vn/${name}`]);
  for (let i = 1; i < 3 && r.code !== 0; i++) r = await h.vcctl(['logs', `vn/${name}`]);
  if (r.code !== 0) throw new Error(`vcctl logs vn/${name} failed 3 times: ${r.stderr.trim()}`);
  return r.stdout;
}

/** `vcctl get -o wide` of every kind a VC makes, the events, and where the manager's log is. */
export async function printCluster(h: ClusterHarness): Promise<void> {
  const r = await h.vcctl(['get', 'vc,vn,vol,pn', '-o', 'wide']);
  console.log(r.stdout, r.stderr, (await h.vcctl(['events'])).stdout, `manager log: ${h.managerLog}`);
}

/** What fullXenSuite gives a suite: the harness (set in its before hook) and a transport to each dom0. */
export interface FullXenSuite {
  h: ClusterHarness;
  readonly dom0: Map<string, SshTransport>;
}

/**
 * Mocha hooks for a suite on two full Xen nodes under a manager: the cluster harness started before
 * the suite (a SAN disk of `sanMiB`; the manager's migration limit raised from 120 s, a TCG Xen
 * migration takes minutes, and orphans stopped after 30 s), a transport to each dom0, both closed
 * and stopped after it, and after a failed test the cluster printed, then `onFailure` (the suite's
 * own view: consoles, dom0 state). Call it first in the describe: its hooks run before the suite's.
 */
export function fullXenSuite(opts: { sanMiB: number; onFailure?: () => Promise<void> }): FullXenSuite {
  const s = { h: undefined as unknown as ClusterHarness, dom0: new Map<string, SshTransport>() };
  before(async function () {
    this.timeout(20 * 60_000);
    s.h = await startClusterHarness({ nodes: 2, full: true, sanMiB: opts.sanMiB, managerArgs: ['--orphan-grace', '30', '--migration-timeout', '1200'] });
    for (const [name, t] of dom0Transports(s.h)) s.dom0.set(name, t);
  });
  after(async function () {
    this.timeout(10 * 60_000);
    for (const t of s.dom0.values()) await t.close().catch(() => {});
    await (s.h as ClusterHarness | undefined)?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && s.h) {
      await printCluster(s.h);
      await opts.onFailure?.();
    }
  });
  return s;
}
