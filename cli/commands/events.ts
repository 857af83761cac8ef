// vcctl events [-n NS | -A] [--for KIND/NAME] [-w]: Event objects, oldest first (lastTimestamp).

import type { EventObject } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { namespaceOf, parseTargets } from '../kinds-arg.js';
import { renderObjectsTable } from '../output/print-objects.js';
import { withStore } from '../store.js';

const USAGE = `Usage: vcctl events [--for KIND/NAME] [-n NS | -A] [-o wide]

Lists events (what controllers did and what went wrong), sorted by their last occurrence.

Flags:
      --for KIND/NAME    only events about this object
  -o, --output wide      also COUNT, FIRST SEEN, SOURCE and NAME
  -n, --namespace NS     namespace (default "default")
  -A, --all-namespaces   every namespace`;

export function sortEvents(items: EventObject[]): EventObject[] {
  return [...items].sort((a, b) => {
    const ta = a.spec?.lastTimestamp ?? '';
    const tb = b.spec?.lastTimestamp ?? '';
    return ta < tb ? -1 : ta > tb ? 1 : a.metadata.name < b.metadata.name ? -1 : 1;
  });
}

const command: Command = {
  summary: 'List events, oldest first',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { for: { type: 'string' }, output: { type: 'string', short: 'o' } });
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const output = args.str('output');
    if (output !== undefined && output !== 'wide') throw new UsageError('-o must be wide (use "vcctl get events -o json" for json)');
    const forText = args.str('for');
    const target = forText ? parseTargets([forText]).refs[0] : undefined;
    if (forText && !target) throw new UsageError('--for needs KIND/NAME');
    return withStore(args, ctx, async (store) => {
      const { items } = await store.list<EventObject>('Event', args.allNamespaces ? {} : { namespace: namespaceOf(args) });
      const events = sortEvents(items.filter((e) => !target || (e.spec?.involvedObject.kind === target.kind.kind && e.spec.involvedObject.name === target.name)));
      if (events.length === 0) {
        ctx.stderr.write(`No events found${args.allNamespaces ? '' : ` in ${namespaceOf(args)} namespace`}.\n`);
        return 0;
      }
      ctx.stdout.write(renderObjectsTable('Event', events, { wide: output === 'wide', withNamespace: args.allNamespaces, withKind: false }));
      return 0;
    });
  },
};

export default command;
