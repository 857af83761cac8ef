// The apply step of OCFS2 shared storage on one PhysicalNode (the plan is shared-fs-plan.ts): read
// what the node has (one command), then bring o2cb, the OCFS2 mounts and the kernel NFS exports to
// the plan, through drivers/shared-fs. Called by the network hosts controller before it makes the
// node's taps; it tells which ocfs2 VCs are not served here, whose VMs must not get a new tap here
// yet (so the runtime does not boot them, or switch their migration over, before the guest can
// mount its shared storage).
//
// A node without the SAN disk (a namespace node: no OCFS2 in this machine's kernel) serves no
// OCFS2: a VM of an ocfs2 VC placed there is reported (Warning on the VC and the node) and gets no
// tap. Failures are reported the same way and retried on the next pass; nothing here throws.

import type { PhysicalNode, VirtualCluster } from '../../api/types.js';
import type { ReconcileContext } from '../../controllers/types.js';
import { o2cbOffline, o2cbOnline, O2CB_TCG_TIMEOUTS, type O2cbTimeouts } from '../../drivers/shared-fs/o2cb.js';
import { Ocfs2SharedFs } from '../../drivers/shared-fs/ocfs2-shared-fs.js';
import { readSharedFsNode } from '../../drivers/shared-fs/node-state.js';
import type { Transport } from '../../drivers/transport/types.js';
import type { VmNetwork } from './host-plan.js';
import { isFullNode, O2CB_CLUSTER, o2cbMembers, observedOcfs2Shares, planSharedFsNode } from './shared-fs-plan.js';

export interface SharedFsOutcome {
  changed: string[];
  /** ocfs2 VCs (`<ns>/<vc>`) with a VM here whose volume is not mounted and exported here. */
  notServed: Set<string>;
}

/** Nodes whose last look found no OCFS2 mount and no o2cb cluster: not read again while no ocfs2 VC exists. */
export class CleanSharedFsNodes {
  private readonly clean = new Set<string>();
  has(node: string): boolean {
    return this.clean.has(node);
  }
  set(node: string, clean: boolean): void {
    if (clean) this.clean.add(node);
    else this.clean.delete(node);
  }
}

export async function serveSharedFs(
  ctx: ReconcileContext,
  pn: PhysicalNode,
  transport: Transport,
  vms: readonly VmNetwork[],
  clean: CleanSharedFsNodes,
  timeouts: O2cbTimeouts = O2CB_TCG_TIMEOUTS,
): Promise<SharedFsOutcome> {
  const host = pn.metadata.name;
  const shares = observedOcfs2Shares(ctx.cache);
  // (without an ocfs2 VC, no pass over every VM: one per node plan at 10,000 VMs, hack/bench-scale)
  const ocfs2Here = shares.length === 0 ? []
    : [...new Set(vms.filter((vm) => (vm.host === host || vm.incomingHost === host) && shares.some((s) => s.cluster === vm.cluster)).map((vm) => vm.cluster))];
  const out: SharedFsOutcome = { changed: [], notServed: new Set() };
  const warn = (cluster: string | undefined, reason: string, message: string): void => {
    ctx.log.error({ node: host, cluster }, message);
    ctx.events.record(pn, 'Warning', reason, message);
    if (!cluster) return;
    const [namespace, name] = cluster.split('/');
    const vc = ctx.cache.get<VirtualCluster>({ kind: 'VirtualCluster', namespace, name });
    if (vc) ctx.events.record(vc, 'Warning', reason, `shared storage not served on ${host}: ${message}`);
  };
  if (!isFullNode(pn)) {
    for (const c of ocfs2Here) {
      out.notServed.add(c);
      warn(c, 'Ocfs2NeedsSan', `${host} has no SAN disk (spec.sanDevice), so no OCFS2: a VM of a VC with sharedStorage.filesystem ocfs2 runs only on full nodes (use nfs on namespace nodes)`);
    }
    return out;
  }
  if (shares.length === 0 && clean.has(host)) return out;
  const fs = new Ocfs2SharedFs(transport, { cluster: O2CB_CLUSTER });
  let observed;
  try {
    observed = await readSharedFsNode(transport, fs.vg.vg);
  } catch (e) {
    for (const c of ocfs2Here) out.notServed.add(c);
    warn(undefined, 'SharedStorageFailed', (e as Error).message);
    return out;
  }
  clean.set(host, observed.mounts.length === 0 && observed.cluster === undefined);
  const members = o2cbMembers(ctx.cache.list<PhysicalNode>('PhysicalNode'));
  const plan = planSharedFsNode({
    host, vms, shares, members,
    observed: { ...observed, mounts: observed.mounts.map((m) => ({ mountPoint: m.mountPoint, ref: fs.refOf(m.mountPoint, m.lv) })) },
    mountPoint: (r) => fs.mountPoint(r),
    keepOnline: shares.some((s) => !s.made),
  });
  for (const c of plan.waiting) out.notServed.add(c);
  let onlineFailed: Error | undefined;
  for (const step of plan.steps) {
    try {
      switch (step.type) {
        case 'online':
          await o2cbOnline(transport, { name: O2CB_CLUSTER, members: step.members, timeouts });
          break;
        case 'serve':
          if (onlineFailed) throw onlineFailed;
          if (step.unexportFirst) await fs.unexport(step.ref, transport);
          await fs.mount(step.ref, transport);
          await fs.export(step.ref, transport, step.clients);
          out.changed.push(`shared volume ${step.cluster} mounted and exported to ${step.clients}`);
          break;
        case 'unmount':
          await fs.unmount(step.ref, transport);
          out.changed.push(`shared volume ${step.ref.namespace}/${step.ref.vc} unexported and unmounted`);
          break;
        case 'offline':
          await o2cbOffline(transport, O2CB_CLUSTER);
          out.changed.push(`o2cb cluster ${O2CB_CLUSTER} offline`);
          clean.set(host, true);
          break;
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (step.type === 'online') onlineFailed = err;
      if (step.type === 'serve') out.notServed.add(step.cluster);
      const cluster = step.type === 'serve' ? step.cluster : step.type === 'unmount' ? `${step.ref.namespace}/${step.ref.vc}` : undefined;
      // the o2cb failure is told once, through the serve steps it stops
      if (step.type !== 'online' || !plan.steps.some((s) => s.type === 'serve')) warn(cluster, 'SharedStorageFailed', err.message);
    }
  }
  return out;
}
