// Shared by vcctl cordon and uncordon: set PhysicalNode spec.unschedulable, retrying on conflict.

import { ConflictError, type Store } from '../../api/store/types.js';
import type { PhysicalNode } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { nameOfKind } from '../kinds-arg.js';
import { withStore } from '../store.js';

/** The PhysicalNode named by `NODE` or `pn/NODE` (drain, cordon, uncordon). */
export function physicalNodeName(word: string): string {
  const name = nameOfKind(word, 'PhysicalNode');
  if (!name) throw new UsageError(`"${word}" is not a PhysicalNode: use NODE or pn/NODE`);
  return name;
}

/** Sets spec.unschedulable; returns whether it changed. */
export async function setUnschedulable(store: Store, name: string, value: boolean): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    const pn = await store.tryGet<PhysicalNode>({ kind: 'PhysicalNode', name });
    if (!pn?.spec) throw new Error(`physicalnode "${name}" not found; see "vcctl get pn"`);
    if ((pn.spec.unschedulable === true) === value) return false;
    try {
      await store.update<PhysicalNode>({ ...pn, spec: { ...pn.spec, unschedulable: value } });
      return true;
    } catch (err) {
      if (!(err instanceof ConflictError) || attempt >= 5) throw err;
    }
  }
}

export function cordonCommand(value: boolean): Command {
  const verb = value ? 'cordon' : 'uncordon';
  const done = value ? 'cordoned' : 'uncordoned';
  return {
    summary: value ? 'Mark PhysicalNodes unschedulable' : 'Mark PhysicalNodes schedulable again',
    usage: `Usage: vcctl ${verb} NODE...\n\nSets spec.unschedulable of each PhysicalNode to ${value}. ${value
      ? 'VMs already there stay; see "vcctl drain" to move them.'
      : 'VirtualClusters waiting for room are placed again.'}`,
    async run(argv: string[], ctx: CommandContext) {
      const args = parseArgs(argv, {});
      if (args.positionals.length === 0) throw new UsageError(`name the node: vcctl ${verb} NODE`);
      const names = args.positionals.map(physicalNodeName);
      return withStore(args, ctx, async (store) => {
        for (const n of names) {
          const changed = await setUnschedulable(store, n, value);
          ctx.stdout.write(`physicalnode/${n} ${changed ? done : `already ${done}`}\n`);
        }
        return 0;
      });
    },
  };
}
