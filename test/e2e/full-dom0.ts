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

/** `vcctl get -o wide` of every kind a VC makes, the events, and where the manager's log is. */
export async function printCluster(h: ClusterHarness): Promise<void> {
  const r = await h.vcctl(['get', 'vc,vn,vol,pn', '-o', 'wide']);
  console.log(r.stdout, r.stderr, (await h.vcctl(['events'])).stdout, `manager log: ${h.managerLog}`);
}
