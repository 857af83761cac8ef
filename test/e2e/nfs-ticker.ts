// What the NFS end-to-end tests run in their guests, and how they read it back. Each guest runs a
// ticker that rewrites `tick-<its name>` in the VC's share every second and prints what it sees
// there (`NFS-SEES <files>` on its console every 3 s). The files are read by the tests on the SAN
// (the exported directory), never over the VC network.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../controllers/helpers.js';

export const TICKER = [
  'd="$VC_SHARED_MOUNT"',
  '(i=0; while true; do i=$((i + 1)); echo "$i" > "$d/.tick-$VC_NODE_NAME" && mv "$d/.tick-$VC_NODE_NAME" "$d/tick-$VC_NODE_NAME"; [ $((i % 3)) = 1 ] && echo "NFS-SEES $(ls "$d" | tr "\\n" " ")" > /dev/console; sleep 1; done) &',
].join('\n');

/** A Running VC of two VMs (Cyclic: one per node on two nodes) with NFS shared storage and the ticker. */
export const nfsTickerVc = (name: string) => `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${name}, namespace: default}
spec:
  nodes: 2
  template: busybox
  node: {vcpus: 1, memoryMiB: 128, diskGiB: 1, swapMiB: 16}
  sharedStorage: {sizeGiB: 1, filesystem: nfs}
  placement: {strategy: Cyclic, mode: Lazy}
  state: Running
  firstBoot:
    script: ${JSON.stringify(TICKER)}
`;

/** The ticks of the guests in the shared directory `shared()` (a function: known once provisioned). */
export function shareTicks(shared: () => string) {
  const tick = (name: string): number => {
    try {
      return Number(readFileSync(join(shared(), `tick-${name}`), 'utf8').trim()) || 0;
    } catch {
      return 0;
    }
  };
  /** The guest keeps writing to the share: its counter climbs by `by` from now, never going back. */
  const advances = async (name: string, by = 3, timeoutMs = 90_000): Promise<number> => {
    const from = tick(name);
    let last = from;
    let wentBack: string | undefined;
    await waitFor(`${name} writing to the share past ${from + by}`, async () => {
      const t = tick(name);
      if (t < last) wentBack ??= `${name}'s counter went back from ${last} to ${t}: the guest restarted`;
      last = t;
      return t >= from + by;
    }, timeoutMs, 500);
    assert.equal(wentBack, undefined);
    return last;
  };
  return { tick, advances };
}
