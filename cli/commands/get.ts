// vcctl get KIND[/NAME] [NAME...] [-n NS | -A] [-l SELECTOR] [-o wide|yaml|json|name] [-w]

import type { KindInfo } from '../../api/kinds.js';
import { NotFoundError, type Store, type Watch } from '../../api/store/types.js';
import type { ApiObject } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { parseDuration } from '../duration.js';
import { namespaceOf, parseTargets, refFor } from '../kinds-arg.js';
import {
  parseOutput, renderNames, renderObjectsTable, renderStructured, type OutputFormat,
} from '../output/print-objects.js';
import { safeJson } from '../output/escape.js';
import { withStore } from '../store.js';

const USAGE = `Usage: vcctl get KIND[,KIND...] [NAME...] | KIND/NAME... [flags]

Lists objects as a table, or prints them in another format. Kinds by name, plural or short name:
physicalnodes (pn), ostemplates (ost), virtualclusters (vc), virtualnodes (vn), volumes (vol),
migrations (mig), events (ev), gitsources (gs).

Flags:
  -o, --output FORMAT    wide, yaml, json or name. One object asked for by name prints as
                         itself; otherwise {"apiVersion":"v1","kind":"List","items":[...]}
  -l, --selector SEL     label selector: a=b,c!=d,e in (x,y),!f
  -n, --namespace NS     namespace of namespaced kinds (default "default")
  -A, --all-namespaces   every namespace
  -w, --watch            after the list, print every change until interrupted
      --timeout DUR      with -w: stop after this long (30s, 5m)
      --store URL        the store (default $VCCTL_STORE, else the embedded store)

Examples:
  vcctl get vc
  vcctl get vc,vn -o wide
  vcctl get vc/stripes -o yaml
  vcctl get pn -l rack=r1 -o name`;

const FLAGS = {
  output: { type: 'string', short: 'o' },
  selector: { type: 'string', short: 'l' },
  watch: { type: 'boolean', short: 'w' },
  timeout: { type: 'string' },
} as const;

const command: Command = {
  summary: 'List objects, or show some in a format (-o wide|yaml|json|name)',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, FLAGS);
    const output = parseOutput(args.str('output'));
    const targets = parseTargets(args.positionals);
    if (targets.kinds.length === 0 && targets.refs.length === 0) {
      throw new UsageError('give a kind: vcctl get KIND (e.g. vcctl get vc)');
    }
    if (targets.refs.length > 0 && args.str('selector') !== undefined) {
      throw new UsageError('-l cannot be combined with names');
    }
    const allNs = args.allNamespaces;
    if (allNs && args.namespace !== undefined) throw new UsageError('-A and -n exclude each other');
    const timeout = args.str('timeout');
    const watchTimeoutMs = timeout === undefined ? undefined : parseDuration(timeout, 'timeout');
    return withStore(args, ctx, async (store) => {
      let code = 0;
      const groups: { kind: KindInfo; objs: ApiObject[]; revision?: number }[] = [];
      if (targets.refs.length > 0) {
        const byKind = new Map<string, { kind: KindInfo; objs: ApiObject[] }>();
        for (const r of targets.refs) {
          try {
            const o = await store.get(refFor(r.kind, r.name, args));
            const g = byKind.get(r.kind.kind) ?? { kind: r.kind, objs: [] };
            g.objs.push(o);
            byKind.set(r.kind.kind, g);
          } catch (err) {
            if (!(err instanceof NotFoundError)) throw err;
            ctx.stderr.write(`error: ${r.kind.singular} "${r.name}" not found${r.kind.namespaced ? ` in namespace "${namespaceOf(args)}"` : ''}\n`);
            code = 1;
          }
        }
        groups.push(...byKind.values());
      } else {
        for (const kind of targets.kinds) {
          const res = await store.list(kind.kind, {
            ...(kind.namespaced && !allNs ? { namespace: namespaceOf(args) } : {}),
            labelSelector: args.str('selector'),
          });
          groups.push({ kind, objs: res.items, revision: res.revision });
        }
      }
      const single = targets.refs.length === 1;
      const all = groups.flatMap((g) => g.objs);
      if (output === 'json' || output === 'yaml') {
        if (all.length > 0 || targets.refs.length === 0) ctx.stdout.write(await renderStructured(output, all, single));
      } else if (output === 'name') {
        ctx.stdout.write(renderNames(all));
      } else {
        const withKind = groups.length > 1 || targets.kinds.length > 1;
        const printed = groups.filter((g) => g.objs.length > 0);
        printed.forEach((g, i) => {
          if (i > 0) ctx.stdout.write('\n');
          ctx.stdout.write(renderObjectsTable(g.kind.kind, g.objs, { wide: output === 'wide', withNamespace: allNs, withKind }));
        });
        if (printed.length === 0 && targets.refs.length === 0 && !args.bool('watch')) {
          const nsText = targets.kinds.some((k) => k.namespaced) && !allNs ? ` in ${namespaceOf(args)} namespace` : '';
          ctx.stderr.write(`No resources found${nsText}.\n`);
        }
      }
      if (args.bool('watch')) {
        await watchChanges(store, ctx, {
          groups: groups.length > 0 ? groups : targets.refs.map((r) => ({ kind: r.kind, objs: [] })),
          names: targets.refs.length > 0 ? new Set(targets.refs.map((r) => `${r.kind.kind}/${r.name}`)) : undefined,
          namespace: allNs ? undefined : namespaceOf(args),
          output,
          allNs,
          timeoutMs: watchTimeoutMs,
        });
      }
      return code;
    });
  },
};

interface WatchSpec {
  groups: { kind: KindInfo; revision?: number }[];
  names?: Set<string>;
  namespace?: string;
  output: OutputFormat;
  allNs: boolean;
  timeoutMs?: number;
}

/** Prints every change after the list, one row (or object) per change, until interrupted. */
async function watchChanges(store: Store, ctx: CommandContext, spec: WatchSpec): Promise<void> {
  const fromRevision = (spec.groups.find((g) => g.revision !== undefined)?.revision ?? (await store.revision())) + 1;
  const watches: Watch[] = [];
  const withKind = spec.groups.length > 1;
  await new Promise<void>((resolve, reject) => {
    const stop = (): void => {
      for (const w of watches) w.close();
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      clearTimeout(timer);
      resolve();
    };
    const timer = spec.timeoutMs !== undefined ? setTimeout(stop, spec.timeoutMs) : undefined;
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    for (const g of spec.groups) {
      watches.push(store.watch(g.kind.kind, {
        fromRevision,
        ...(g.kind.namespaced && spec.namespace !== undefined ? { namespace: spec.namespace } : {}),
      }, {
        onEvent: (ev) => {
          if (spec.names && !spec.names.has(`${g.kind.kind}/${ev.object.metadata.name}`)) return;
          void printChange(ctx, g.kind.kind, ev.type, ev.object, spec, withKind);
        },
        onError: (err) => {
          stop();
          reject(err);
        },
      }));
    }
  });
}

async function printChange(ctx: CommandContext, kind: string, type: string, o: ApiObject, spec: WatchSpec, withKind: boolean): Promise<void> {
  if (spec.output === 'json') ctx.stdout.write(`${safeJson({ type, object: o })}\n`);
  else if (spec.output === 'yaml') ctx.stdout.write(`---\n${await renderStructured('yaml', [o], true)}`);
  else if (spec.output === 'name') ctx.stdout.write(renderNames([o]));
  else {
    const row = renderObjectsTable(kind, [o], { wide: spec.output === 'wide', withNamespace: spec.allNs, withKind, header: false });
    ctx.stdout.write(type === 'DELETED' ? `${row.trimEnd()}   (deleted)\n` : row);
  }
}

export default command;
