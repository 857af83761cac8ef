// vcctl console vn/NAME [--force]: an interactive serial console of a VM (like `virtctl console`
// and `xl console`), reached over the SSH connection of the node it runs on. Keys go to the
// guest's serial port, its output comes back; Ctrl-] detaches (the VM keeps running). A console
// attached elsewhere is not taken unless --force, which ends the other session. With a terminal
// on stdin it is put in raw mode for the session; without one, the end of stdin detaches.

import type { ReadStream } from 'node:tty';
import type { PhysicalNode, VirtualNode } from '../../api/types.js';
import { domainNameOf } from '../../api/names.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { nameOfKind } from '../kinds-arg.js';
import { withStore } from '../store.js';

/** Ctrl-]: the escape byte that detaches, as in telnet, virsh and virtctl. */
export const DETACH_BYTE = 0x1d;

const command: Command = {
  summary: "Attach to a VirtualNode's serial console (Ctrl-] detaches)",
  usage: `Usage: vcctl console vn/NAME [-n NS] [--force]

Attaches to the serial console (ttyS0) of the VM, on the node it runs on. Ctrl-] detaches.
The console admits one session at a time: --force ends the other one and takes over.`,
  async run(argv, ctx) {
    const args = parseArgs(argv, { force: { type: 'boolean' } });
    const name = nameOfKind(args.positionals[0] ?? '', 'VirtualNode');
    if (!name || args.positionals.length !== 1) throw new UsageError('name one VirtualNode: vcctl console vn/NAME');
    const namespace = args.namespace ?? 'default';
    return withStore(args, ctx, async (store) => {
      const vn = await store.tryGet<VirtualNode>({ kind: 'VirtualNode', namespace, name });
      if (!vn?.spec) throw new Error(`virtualnode "${name}" not found in namespace "${namespace}"`);
      const host = vn.status?.host;
      if (!host || (vn.status?.phase !== 'Running' && vn.status?.phase !== 'Migrating')) {
        throw new Error(`virtualnode "${name}" is not running (phase ${vn.status?.phase ?? 'Pending'}); its last output: vcctl logs vn/${name}`);
      }
      const pn = await store.get<PhysicalNode>({ kind: 'PhysicalNode', name: host });
      const [{ TransportCache }, { HypervisorDrivers }] = await Promise.all([
        import('../../drivers/transport/transport-for.js'),
        import('../../reconcilers/runtime/hosts.js'),
      ]);
      const transports = new TransportCache();
      try {
        const driver = new HypervisorDrivers(transports).get(pn);
        if (!driver.attachConsole) throw new Error(`the ${driver.kind} driver of ${host} has no interactive console`);
        const session = await driver.attachConsole(domainNameOf(vn), { force: args.bool('force') });
        ctx.stderr.write(`Connected to the console of virtualnode/${name} on ${host}. Detach with Ctrl-].\r\n`);
        const tty = ctx.stdin as Partial<ReadStream>;
        const raw = !!tty.isTTY && typeof tty.setRawMode === 'function';
        if (raw) tty.setRawMode!(true);
        let detached = false;
        const detach = (): void => {
          if (detached) return;
          detached = true;
          session.close();
        };
        const onData = (b: Buffer): void => {
          const at = b.indexOf(DETACH_BYTE);
          if (at < 0) {
            session.input.write(b);
            return;
          }
          if (at > 0) session.input.write(b.subarray(0, at));
          detach();
        };
        // Without a terminal the input may end before the guest has answered: its output gets a moment.
        const onEnd = (): void => void setTimeout(detach, 2_000);
        ctx.stdin.on('data', onData);
        ctx.stdin.on('end', onEnd);
        session.output.on('data', (b: Buffer) => ctx.stdout.write(b));
        try {
          await session.done;
        } finally {
          ctx.stdin.off('data', onData);
          ctx.stdin.off('end', onEnd);
          if (raw) tty.setRawMode!(false);
          ctx.stdin.pause();
        }
        if (detached) {
          ctx.stderr.write(`\r\nDetached from virtualnode/${name}.\r\n`);
          return 0;
        }
        ctx.stderr.write(`\r\nThe console of virtualnode/${name} was closed (another session took it over with --force, or the VM stopped).\r\n`);
        return 1;
      } finally {
        await transports.closeAll();
      }
    });
  },
};

export default command;
