// Shared by vcctl suspend and resume: set a VirtualCluster's spec.state, retrying on conflict,
// and with --wait follow its status.phase to the state asked for.

import { ConflictError } from '../../api/store/types.js';
import type { VCState, VirtualCluster } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { parseDuration } from '../duration.js';
import { withStore } from '../store.js';
import { nameOfKind } from '../kinds-arg.js';
import { waitForObject } from '../wait-for.js';

export function vcStateCommand(state: VCState, verb: string, summary: string): Command {
  return {
    summary,
    usage: `Usage: vcctl ${verb} vc/NAME... [-n NS] [--wait] [--timeout=DURATION]\n\nSets spec.state: ${state}. --wait waits (default 5m) until status.phase is ${state}.`,
    async run(argv, ctx) {
      const args = parseArgs(argv, { wait: { type: 'boolean' }, timeout: { type: 'string' } });
      const names = args.positionals.map((p) => {
        const name = nameOfKind(p, 'VirtualCluster');
        if (!name) throw new UsageError(`"${p}" is not a VirtualCluster: use vc/NAME`);
        return name;
      });
      if (names.length === 0) throw new UsageError(`name the cluster: vcctl ${verb} vc/NAME`);
      const namespace = args.namespace ?? 'default';
      const timeoutMs = parseDuration(args.str('timeout') ?? '5m', 'timeout');
      return withStore(args, ctx, async (store) => {
        for (const name of names) {
          const ref = { kind: 'VirtualCluster', namespace, name };
          for (let attempt = 1; ; attempt++) {
            const vc = await store.tryGet<VirtualCluster>(ref);
            if (!vc?.spec) throw new Error(`virtualcluster "${name}" not found in namespace "${namespace}"; see "vcctl get vc -n ${namespace}"`);
            if (vc.spec.state === state) {
              ctx.stdout.write(`virtualcluster/${name} already ${state}\n`);
              break;
            }
            try {
              await store.update<VirtualCluster>({ ...vc, spec: { ...vc.spec, state } });
              ctx.stdout.write(`virtualcluster/${name} ${verb === 'resume' ? 'resuming' : `${verb}ing`}\n`);
              break;
            } catch (err) {
              if (!(err instanceof ConflictError) || attempt >= 5) throw err;
            }
          }
          if (args.bool('wait')) {
            await waitForObject(store, ref, (o) => (o as VirtualCluster | undefined)?.status?.phase === state, timeoutMs, `phase ${state}`);
            ctx.stdout.write(`virtualcluster/${name} ${state}\n`);
          }
        }
        return 0;
      });
    },
  };
}
