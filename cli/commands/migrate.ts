// vcctl migrate vn/NAME --to NODE [--wait] [--timeout=DURATION]: asks for a live migration by
// creating a Migration, reserving the VM's room on the target in the same transaction (as drain
// does), so a VC placed at the same moment cannot take that room. With --wait, follows the
// Migration to its end and prints the downtime and total time the hypervisor reported (QEMU's own
// figures; Xen's from xl's migration output, see drivers/hypervisor/xen-driver.ts).

import { ConflictError, type BatchOp } from '../../api/store/types.js';
import { API_VERSION, type Migration, type PhysicalNode, type VirtualNode } from '../../api/types.js';
import { addUsage, vmUsage, ZERO } from '../../reconcilers/placement/plan-binding.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { parseDuration } from '../duration.js';
import { escapeControl } from '../output/escape.js';
import { withStore } from '../store.js';
import { nameOfKind } from '../kinds-arg.js';
import { waitForObject } from '../wait-for.js';
import { crossKind, MAX_BANDWIDTH_ANNOTATION } from '../../reconcilers/runtime/migration-controller.js';
import { CLUSTER_LABEL } from '../../api/labels.js';

const USAGE = `Usage: vcctl migrate vn/NAME --to NODE [-n NS] [--wait] [--timeout=DURATION] [--max-bandwidth=BYTES]

Live-migrates the VM of a VirtualNode to another PhysicalNode. The VM keeps running on its node
if the migration fails. --wait follows it to the end (default timeout 5m) and exits 1 if it failed.
--max-bandwidth caps the transfer, in bytes per second (suffixes Ki, Mi, Gi).`;

/** "256Ki" -> 262144. */
export function parseBytes(text: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(text);
  if (!m) throw new UsageError(`--max-bandwidth: "${text}" is not a byte count like 1048576 or 512Ki`);
  const unit = m[2] === 'Gi' ? 1024 ** 3 : m[2] === 'Mi' ? 1024 ** 2 : m[2] === 'Ki' ? 1024 : 1;
  return Number(m[1]) * unit;
}

export function migrationName(vn: string, stamp: string): string {
  const suffix = `-mig-${stamp}`;
  return `${vn.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`;
}

const command: Command = {
  summary: 'Live-migrate a VirtualNode to another PhysicalNode',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { to: { type: 'string' }, wait: { type: 'boolean' }, timeout: { type: 'string' }, 'max-bandwidth': { type: 'string' } });
    const target = args.str('to');
    const what = args.positionals[0];
    if (!what || args.positionals.length > 1 || !target) throw new UsageError('name one VirtualNode and the target: vcctl migrate vn/NAME --to NODE');
    const name = nameOfKind(what, 'VirtualNode');
    if (!name) throw new UsageError(`"${what}" is not a VirtualNode: use vn/NAME`);
    const namespace = args.namespace ?? 'default';
    const timeoutMs = parseDuration(args.str('timeout') ?? '5m', 'timeout');
    const bw = args.str('max-bandwidth');
    const annotations = bw !== undefined ? { [MAX_BANDWIDTH_ANNOTATION]: String(parseBytes(bw)) } : undefined;
    return withStore(args, ctx, async (store) => {
      let created: Migration | undefined;
      for (let attempt = 1; !created; attempt++) {
        const vn = await store.tryGet<VirtualNode>({ kind: 'VirtualNode', namespace, name });
        if (!vn?.spec) throw new Error(`virtualnode "${name}" not found in namespace "${namespace}"; see "vcctl get vn -n ${namespace}"`);
        const pn = await store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name: target });
        if (!pn) throw new Error(`physicalnode "${target}" not found; see "vcctl get pn"`);
        const from = vn.status?.host ?? vn.spec.physicalNode;
        const cross = crossKind(from ? await store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name: from }) : undefined, pn);
        if (cross) throw new Error(`cannot migrate virtualnode "${name}" to physicalnode "${target}": ${cross}`);
        const owner = vn.metadata.ownerReferences?.find((r) => r.kind === 'VirtualCluster');
        const mig: Migration = {
          apiVersion: API_VERSION,
          kind: 'Migration',
          metadata: {
            name: migrationName(name, Date.now().toString(36)),
            namespace,
            labels: { [CLUSTER_LABEL]: vn.spec.cluster },
            ...(annotations ? { annotations } : {}),
            ...(owner ? { ownerReferences: [{ ...owner, controller: false }] } : {}),
          },
          spec: { virtualNode: name, targetNode: target },
        };
        const ops: BatchOp[] = [
          { op: 'create', object: mig },
          { op: 'updateStatus', object: { ...pn, status: { ...pn.status, allocated: addUsage(pn.status?.allocated ?? ZERO, vmUsage(vn)) } } },
        ];
        try {
          [created] = (await store.batch(ops)) as [Migration];
        } catch (err) {
          if (!(err instanceof ConflictError) || attempt >= 5) throw err;
        }
      }
      ctx.stdout.write(`migration/${created.metadata.name} created (virtualnode/${name} -> ${target})\n`);
      if (!args.bool('wait')) return 0;
      const done = (await waitForObject(store, { kind: 'Migration', namespace, name: created.metadata.name },
        (o) => ['Succeeded', 'Failed'].includes((o as Migration | undefined)?.status?.phase ?? ''), timeoutMs, 'the migration to finish')) as Migration;
      const s = done.status!;
      if (s.phase === 'Succeeded') {
        ctx.stdout.write(`migration/${created.metadata.name} succeeded: downtime ${s.downtimeMs ?? '?'} ms, total ${s.totalMs ?? '?'} ms\n`);
        return 0;
      }
      ctx.stderr.write(`error: migration/${created.metadata.name} failed: ${escapeControl(s.message ?? 'no reason given')}\n`);
      return 1;
    });
  },
};

export default command;
