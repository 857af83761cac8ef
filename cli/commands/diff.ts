// vcctl diff -f FILE|DIR|- [-R]: what apply would change, as a unified diff of the live object
// and the object apply would write. Exit 0: no differences; 1: differences; 2 or more: error.

import { APPLIED_BY_ANNOTATION, LAST_APPLIED_ANNOTATION, planApply, refOf } from '../../api/apply/index.js';
import { loadManifests } from '../../api/input/index.js';
import type { ApiObject } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { printError } from '../errors.js';
import { namespaceOf } from '../kinds-arg.js';
import { escapeControl } from '../output/escape.js';
import { unifiedDiff } from '../output/unified-diff.js';
import { withStore } from '../store.js';

const USAGE = `Usage: vcctl diff -f FILE|DIR|- [-R]

Shows, per object, a unified diff between the live object and what "vcctl apply" would make of
it (the same three-way merge). Status and apply's own annotations are left out.
Exit status: 0 no differences, 1 differences, 2 an error.

Flags:
  -f, --filename PATH    a file, a directory or - for stdin; repeatable
  -R, --recursive        descend into subdirectories of a directory
  -n, --namespace NS     namespace for objects that name none`;

/** What the diff shows: no status (apply never changes it), no bookkeeping of apply itself. */
function forDiff(o: ApiObject | undefined): ApiObject | undefined {
  if (!o) return undefined;
  const c = structuredClone(o);
  delete c.status;
  delete c.metadata.resourceVersion;
  const ann = c.metadata.annotations;
  if (ann) {
    delete ann[LAST_APPLIED_ANNOTATION];
    delete ann[APPLIED_BY_ANNOTATION];
    if (Object.keys(ann).length === 0) delete c.metadata.annotations;
  }
  return c;
}

const command: Command = {
  summary: 'Show what apply would change (exit 0 same, 1 differs)',
  usage: USAGE,
  async run(argv, ctx) {
    try {
      const args = parseArgs(argv, {
        filename: { type: 'string', short: 'f', multiple: true },
        recursive: { type: 'boolean', short: 'R' },
      });
      const files = args.strs('filename');
      if (files.length === 0) throw new UsageError('give the manifests with -f FILE|DIR|-');
      const manifests = await loadManifests(files, {
        recursive: args.bool('recursive'), stdin: ctx.stdin, namespace: namespaceOf(args), enforceNamespace: args.namespace !== undefined,
      });
      const { stringify } = await import('yaml');
      const yaml = (o: ApiObject | undefined) => (o ? stringify(o, { lineWidth: 0 }) : '');
      return await withStore(args, ctx, async (store) => {
        let differs = false;
        for (const m of manifests) {
          const ref = refOf(m.object);
          const live = await store.tryGet(ref);
          const plan = planApply(m.object, live, { fieldManager: 'vcctl' });
          if (plan.action === 'unchanged') continue;
          const name = `${ref.kind.toLowerCase()}${ref.namespace ? `.${ref.namespace}` : ''}.${ref.name}`;
          const text = unifiedDiff(yaml(forDiff(live)), yaml(forDiff(plan.object)), `live/${name}`, `merged/${name}`);
          if (text) {
            differs = true;
            ctx.stdout.write(escapeControl(`diff -u -N live/${name} merged/${name}\n${text}`, { keepLines: true }));
          }
        }
        return differs ? 1 : 0;
      });
    } catch (err) {
      printError(err, ctx.stderr, ctx.env, 'See "vcctl diff --help".');
      return 2;
    }
  },
};

export default command;
