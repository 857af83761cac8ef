// End to end on the testbed (issue 14): nothing of another VC answers a guest, its gateway
// included. A VC's gateway address sits on that VC's taps, so a node hosting VMs of two VCs held
// both gateways, and its input path answered a guest of one VC that addressed the other's
// (10.10.1.0/29 pinged 10.10.2.1). Two VCs of two VMs each on two nodes (Cyclic: every node hosts
// both VCs); both serve shared storage over NFS from their gateway. Every guest probes, from
// inside, every address of the other VC's /29 (ping) and the other gateway's TCP services (the
// node's sshd and NFS server), its own gateway, its peer and the physical nodes. No probe leaves
// the testbed: the guests' only routes are their nodes'.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { startClusterHarness, type ClusterHarness } from '../../hack/lib/cluster-harness.js';
import type { VirtualNode, Volume } from '../../api/types.js';
import { NFS_PORT } from '../../drivers/nfs/ganesha-config.js';
import { waitFor } from '../controllers/helpers.js';

const SUBNETS = { red: '10.10.1', blue: '10.10.2' } as const; // both /29: .0 to .7
type Color = keyof typeof SUBNETS;
const other = (c: Color): Color => (c === 'red' ? 'blue' : 'red');
const all = (c: Color) => Array.from({ length: 8 }, (_, i) => `${SUBNETS[c]}.${i}`);
const gateway = (c: Color) => `${SUBNETS[c]}.1`;
const vmIp = (c: Color, i: number) => `${SUBNETS[c]}.${i + 2}`;

/**
 * Every round probes in parallel, one console line each: `PROBE <vm> ping <addr> ok|none` and
 * `PROBE <vm> tcp <addr>:<port> ok|refused|none` (refused: a RST came back, an answer too), then
 * prints `ROUND <vm> <n>`. It also leaves a file in the VC's share (mounted from its gateway).
 */
const probeScript = (pings: string[], tcps: string[]) => `me=$VC_NODE_NAME
echo "from $me" > "$VC_SHARED_MOUNT/hello-$me"
png() { if ping -c 1 -W 2 "$1" >/dev/null 2>&1; then r=ok; else r=none; fi; echo "PROBE $me ping $1 $r"; }
tcp() {
  out=$(nc -w 2 "$1" "$2" </dev/null 2>&1) && r=ok || { case $out in *efused*) r=refused ;; *) r=none ;; esac; }
  echo "PROBE $me tcp $1:$2 $r"
}
(n=0; while true; do
  n=$((n + 1))
  for a in ${pings.join(' ')}; do png "$a" & done
  for t in ${tcps.join(' ')}; do tcp "\${t%:*}" "\${t#*:}" & done
  wait
  echo "ROUND $me $n"
  sleep 2
done) > /dev/console 2>&1 &
`;

describe('isolation between VCs, their gateways included, end to end on the testbed', function () {
  this.timeout(15 * 60_000);
  let h: ClusterHarness;
  const vn = (name: string) => h.store.get<VirtualNode>({ kind: 'VirtualNode', namespace: 'default', name });
  const logs = async (vm: string) => (await h.vcctl(['logs', `vn/${vm}`])).stdout.split(/\r?\n/).map((l) => l.trim());
  const vms = ['red-0', 'red-1', 'blue-0', 'blue-1'];
  const colorOf = (vm: string) => vm.split('-')[0] as Color;

  before(async function () {
    this.timeout(10 * 60_000);
    h = await startClusterHarness({ nodes: 2, cores: 2, memoryMiB: 1024 });
    const physical = h.testbed.nodes.map((n) => n.address);
    const sshPort = h.testbed.nodes[0]!.port;
    for (const c of ['red', 'blue'] as const) {
      const o = other(c);
      const pings = [...all(o), gateway(c), vmIp(c, 0), vmIp(c, 1), ...physical];
      const tcps = [`${gateway(o)}:${sshPort}`, `${gateway(o)}:${NFS_PORT}`, `${gateway(c)}:${NFS_PORT}`];
      const manifest = `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${c}, namespace: default}
spec:
  nodes: 2
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  network: {subnet: ${SUBNETS[c]}.0/29}
  sharedStorage: {sizeGiB: 1, filesystem: nfs}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
  firstBoot:
    script: |
${probeScript(pings, tcps).replace(/^/gm, '      ')}
`;
      const a = await h.vcctl(['apply', '-f', '-'], manifest);
      assert.equal(a.code, 0, a.stderr);
    }
    for (const c of ['red', 'blue']) {
      const w = await h.vcctl(['wait', `vc/${c}`, '--for=condition=Ready', '--timeout=8m']);
      assert.equal(w.code, 0, w.stderr + (await h.vcctl(['describe', `vc/${c}`])).stdout);
    }
  });
  after(async () => {
    await h?.stop();
  });
  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && h) {
      console.log((await h.vcctl(['get', 'vc,vn,pn', '-o', 'wide'])).stdout, `manager log: ${h.managerLog}`);
      for (const vm of vms) console.log(`--- ${vm} console\n${(await logs(vm)).slice(-60).join('\n')}`);
    }
  });

  it('every node hosts a VM of each VC (so each holds both gateways)', async () => {
    const byNode = new Map<string, string[]>();
    for (const vm of vms) {
      const node = (await vn(vm)).spec!.physicalNode!;
      byNode.set(node, [...(byNode.get(node) ?? []), colorOf(vm)]);
    }
    assert.equal(byNode.size, 2);
    for (const [node, colors] of byNode) assert.deepEqual(colors.sort(), ['blue', 'red'], node);
  });

  it('no address of the other VC answers any guest, its gateway included; the own gateway, peer, NFS share and physical nodes do', async () => {
    /** A VM's completed probe rounds, in order: probe (`ping ADDR`, `tcp ADDR:PORT`) -> result. */
    const rounds = async (vm: string): Promise<Map<string, string>[]> => {
      const out: Map<string, string>[] = [];
      let cur = new Map<string, string>();
      for (const l of await logs(vm)) {
        const m = new RegExp(`^PROBE ${vm} (ping|tcp) (\\S+) (ok|refused|none)$`).exec(l);
        if (m) cur.set(`${m[1]} ${m[2]}`, m[3]!);
        else if (new RegExp(`^ROUND ${vm} \\d+$`).test(l)) {
          out.push(cur);
          cur = new Map();
        }
      }
      return out;
    };
    // Once every guest probes (all four booted), three more rounds on each.
    const from = new Map<string, number>();
    await waitFor('every guest probing', async () => {
      for (const vm of vms) from.set(vm, (await rounds(vm)).length);
      return [...from.values()].every((n) => n > 0);
    }, 300_000, 2000);
    await waitFor('three more probe rounds on every guest', async () => {
      for (const vm of vms) if ((await rounds(vm)).length < from.get(vm)! + 3) return false;
      return true;
    }, 240_000, 2000);
    const physical = h.testbed.nodes.map((n) => n.address);
    const sshPort = h.testbed.nodes[0]!.port;
    for (const vm of vms) {
      const c = colorOf(vm);
      const o = other(c);
      const every = await rounds(vm);
      const since = every.slice(from.get(vm)!);
      /**
       * Distinct results of a probe over every round, or only those since all four probe. A line
       * the kernel's own console messages cut through is not counted; three results must remain.
       */
      const seen = (probe: string, rs = every) => {
        const results = rs.flatMap((r) => r.get(probe) ?? []);
        assert.ok(results.length >= 3, `${vm}: only ${results.length} results of ${probe} in ${rs.length} rounds`);
        return [...new Set(results)];
      };
      // Never, from the first round on: the other VC's addresses were isolated before any guest ran.
      for (const a of all(o)) assert.deepEqual(seen(`ping ${a}`), ['none'], `${vm} -> ${a} (${o}) must not answer`);
      for (const port of [sshPort, NFS_PORT]) assert.deepEqual(seen(`tcp ${gateway(o)}:${port}`), ['none'], `${vm} -> ${o}'s gateway TCP ${port} must not answer`);
      assert.deepEqual(seen(`ping ${gateway(c)}`), ['ok'], `${vm} -> its own gateway`);
      assert.deepEqual(seen(`tcp ${gateway(c)}:${NFS_PORT}`), ['ok'], `${vm} -> its own gateway's NFS server`);
      for (const p of physical) assert.deepEqual(seen(`ping ${p}`), ['ok'], `${vm} -> physical node ${p}`);
      for (const peer of [vmIp(c, 0), vmIp(c, 1)]) assert.deepEqual(seen(`ping ${peer}`, since), ['ok'], `${vm} -> ${peer} (its VC)`);
    }
    // Each guest wrote into its VC's share over NFS from its gateway; the VCs' shares stay apart.
    for (const c of ['red', 'blue'] as const) {
      const vol = await h.store.get<Volume>({ kind: 'Volume', namespace: 'default', name: `${c}-shared` });
      assert.deepEqual(readdirSync(vol.status!.path!).filter((f) => f.startsWith('hello-')).sort(), [`hello-${c}-0`, `hello-${c}-1`]);
    }
  });
});
