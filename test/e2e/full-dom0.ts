// What the end-to-end files on full Xen nodes share: an SSH transport to each node's dom0 (the
// testbed's identity, its pinned host keys, timeouts a TCG dom0 under load needs), and the cluster
// printed after a failed test.
import type { ClusterHarness } from '../../hack/lib/cluster-harness.js';
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
