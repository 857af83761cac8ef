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

/**
 * The first kernel oops in a guest's console text (its header line and the lines after it), if
 * any. A WARNING is not one: the NFS client's own warnings are the share's business.
 */
export function kernelOops(console: string, lines = 12): string | undefined {
  const all = console.split(/\r?\n/);
  const at = all.findIndex((l) => /\] (general protection fault|BUG: |Oops: |Kernel panic|kernel BUG at)/.test(l));
  return at < 0 ? undefined : all.slice(at, at + lines).join('\n');
}

/** What a look at a guest found: `failed` when the guest itself is down, hung or crashed. */
export interface GuestHealth {
  failed: boolean;
  says: string;
}

/**
 * The guest `name` itself failed: its kernel oopsed (its console), its domain died since the
 * guest was last seen up (`died`: the runtime's DomainDied event; the runtime starts it anew, but
 * the ticker, a first-boot script, does not run again), or it does not answer its agent. Otherwise
 * it is up and answering, and a ticker that stalls is the shared storage's fault.
 */
export async function guestHealth(
  name: string,
  look: {
    console: (name: string) => Promise<string>;
    died: (name: string) => Promise<string | undefined>;
    ping: (name: string) => Promise<{ uptimeSeconds: number } | undefined>;
  },
): Promise<GuestHealth> {
  const oops = kernelOops(await look.console(name).catch(() => ''));
  if (oops) return { failed: true, says: `its kernel crashed; its console says:\n${oops}` };
  const died = await look.died(name);
  if (died) return { failed: true, says: `its domain died: ${died}` };
  const pong = await look.ping(name).catch(() => undefined);
  if (!pong) return { failed: true, says: 'it does not answer its agent (hung or down)' };
  return { failed: false, says: `it is up (${Math.round(pong.uptimeSeconds)} s) and answers its agent` };
}

/** A stalled ticker whose guest itself failed (guestHealth): not the shared storage's doing. */
export class GuestFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GuestFailedError';
  }
}

/**
 * The ticks of the guests in the shared directory `shared()` (a function: known once provisioned).
 * `health` (guestHealth of a guest) makes a stalled ticker's failure say what the guest was doing,
 * a GuestFailedError when the guest itself failed.
 */
export function shareTicks(shared: () => string, health?: (name: string) => Promise<GuestHealth>) {
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
    try {
      await waitFor(`${name} writing to the share past ${from + by}`, async () => {
        const t = tick(name);
        if (t < last) wentBack ??= `${name}'s counter went back from ${last} to ${t}: the guest restarted`;
        last = t;
        return t >= from + by;
      }, timeoutMs, 500);
    } catch (err) {
      if (!health) throw err;
      const h = await health(name);
      const message = `${(err as Error).message} (it stopped at ${last}); the guest: ${h.says}`;
      throw h.failed ? new GuestFailedError(message) : new Error(message, { cause: err });
    }
    assert.equal(wentBack, undefined);
    return last;
  };
  return { tick, advances };
}
