// vcctl restart vn/NAME | vc/NAME [--all-at-once] [--timeout=DURATION]: reboots VMs, their disks
// kept. A restart is asked for by setting the annotation virtualinux.org/restart of a VirtualNode
// to a new value; the runtime powers the guest off (destroying it after its shutdown timeout) and
// starts it afresh on the same node (with the VirtualNode's current size), then records the value
// in status.restartedFor. The command waits until each VM is restarted and its guest has reported
// in again (GuestReady). A VC's VMs are restarted one at a time, in index order, unless
// --all-at-once.

import { ConflictError, type Store } from '../../api/store/types.js';
import { getCondition } from '../../api/conditions.js';
import type { VirtualCluster, VirtualNode } from '../../api/types.js';
import { RESTART_ANNOTATION } from '../../reconcilers/runtime/plan.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { parseDuration } from '../duration.js';
import { nameOfKind } from '../kinds-arg.js';
import { withStore } from '../store.js';
import { waitForObject } from '../wait-for.js';
import { clusterSelector } from '../../api/labels.js';

const USAGE = `Usage: vcctl restart vn/NAME | vc/NAME [-n NS] [--all-at-once] [--timeout=DURATION]

Reboots the VM of a VirtualNode, or every VM of a VirtualCluster one at a time (--all-at-once: all
together), keeping their disks. Waits until each guest has booted again and reported in
(GuestReady); --timeout (default 5m) bounds the wait for each VM.`;

/** Stamps the restart annotation (retrying on conflict); returns the stamp. Refuses a VM that does not run. */
async function requestRestart(store: Store, namespace: string, name: string, stamp: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const vn = await store.tryGet<VirtualNode>({ kind: 'VirtualNode', namespace, name });
    if (!vn?.spec) throw new Error(`virtualnode "${name}" not found in namespace "${namespace}"; see "vcctl get vn -n ${namespace}"`);
    if (vn.status?.phase !== 'Running') {
      throw new Error(`virtualnode "${name}" is not running (phase ${vn.status?.phase ?? 'Pending'}): nothing to restart`);
    }
    try {
      await store.update<VirtualNode>({ ...vn, metadata: { ...vn.metadata, annotations: { ...vn.metadata.annotations, [RESTART_ANNOTATION]: stamp } } });
      return;
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= 5) throw err;
    }
  }
}

function restarted(o: unknown, stamp: string): boolean {
  const vn = o as VirtualNode | undefined;
  return vn?.status?.restartedFor === stamp && vn.status.phase === 'Running' && getCondition(vn.status.conditions, 'GuestReady')?.status === 'True';
}

const command: Command = {
  summary: 'Reboot the VM of a VirtualNode, or every VM of a VirtualCluster (disks kept)',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { 'all-at-once': { type: 'boolean' }, timeout: { type: 'string' } });
    const what = args.positionals[0];
    if (!what || args.positionals.length !== 1) throw new UsageError('name one VirtualNode or VirtualCluster: vcctl restart vn/NAME | vc/NAME');
    const vnName = what.includes('/') ? nameOfKind(what, 'VirtualNode') : undefined;
    const vcName = what.includes('/') ? nameOfKind(what, 'VirtualCluster') : undefined;
    if (!vnName && !vcName) throw new UsageError(`"${what}" is neither vn/NAME nor vc/NAME`);
    const namespace = args.namespace ?? 'default';
    const timeoutMs = parseDuration(args.str('timeout') ?? '5m', 'timeout');
    return withStore(args, ctx, async (store) => {
      let names: string[];
      if (vnName) {
        names = [vnName];
      } else {
        const vc = await store.tryGet<VirtualCluster>({ kind: 'VirtualCluster', namespace, name: vcName! });
        if (!vc?.spec) throw new Error(`virtualcluster "${vcName}" not found in namespace "${namespace}"; see "vcctl get vc -n ${namespace}"`);
        if (vc.spec.state !== 'Running') throw new Error(`virtualcluster "${vcName}" is ${vc.spec.state}, not Running: nothing to restart`);
        names = (await store.list<VirtualNode>('VirtualNode', { namespace, labelSelector: clusterSelector(vcName!) })).items
          .filter((v) => v.spec && v.spec.index < vc.spec!.nodes && !v.metadata.deletionTimestamp)
          .sort((a, b) => a.spec!.index - b.spec!.index)
          .map((v) => v.metadata.name);
      }
      const stamp = new Date().toISOString();
      const wait = async (name: string): Promise<void> => {
        await waitForObject(store, { kind: 'VirtualNode', namespace, name }, (o) => restarted(o, stamp), timeoutMs, `virtualnode ${name} to restart and report in`);
        ctx.stdout.write(`virtualnode/${name} restarted\n`);
      };
      if (args.bool('all-at-once')) {
        for (const n of names) await requestRestart(store, namespace, n, stamp);
        for (const n of names) ctx.stdout.write(`virtualnode/${n} restarting\n`);
        await Promise.all(names.map(wait));
      } else {
        for (const n of names) {
          await requestRestart(store, namespace, n, stamp);
          ctx.stdout.write(`virtualnode/${n} restarting\n`);
          await wait(n);
        }
      }
      return 0;
    });
  },
};

export default command;
