// vcctl logs vn/NAME [-f]: the guest's console, read from the node that runs it (or last ran it)
// through that node's transport and hypervisor driver.

import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import { domainNameOf } from '../../api/names.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { withStore } from '../store.js';
import { nameOfKind } from '../kinds-arg.js';

const command: Command = {
  summary: "Print a VirtualNode's guest console",
  usage: 'Usage: vcctl logs vn/NAME [-n NS] [-f]\n\nPrints the console (ttyS0) of the VM; -f follows it until interrupted.',
  async run(argv, ctx) {
    const args = parseArgs(argv, { follow: { type: 'boolean', short: 'f' } });
    const name = nameOfKind(args.positionals[0] ?? '', 'VirtualNode');
    if (!name || args.positionals.length !== 1) throw new UsageError('name one VirtualNode: vcctl logs vn/NAME');
    const namespace = args.namespace ?? 'default';
    return withStore(args, ctx, async (store) => {
      const vn = await store.tryGet<VirtualNode>({ kind: 'VirtualNode', namespace, name });
      if (!vn?.spec) throw new Error(`virtualnode "${name}" not found in namespace "${namespace}"`);
      const host = vn.status?.host ?? vn.spec.physicalNode;
      if (!host) throw new Error(`virtualnode "${name}" is not placed on any node yet; see "vcctl describe vn/${name}"`);
      const pn = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: host });
      const [{ TransportCache }, { HypervisorDrivers }] = await Promise.all([
        import('../../drivers/transport/transport-for.js'),
        import('../../reconcilers/runtime/hosts.js'),
      ]);
      const transports = new TransportCache();
      try {
        const driver = new HypervisorDrivers(transports).get(pn);
        let offset = 0;
        for (;;) {
          const chunk = await driver.readConsole(domainNameOf(vn), { fromOffset: offset });
          ctx.stdout.write(chunk.text);
          offset = chunk.nextOffset;
          if (!args.bool('follow')) return 0;
          await new Promise((r) => setTimeout(r, 500));
        }
      } finally {
        await transports.closeAll();
      }
    });
  },
};

export default command;
