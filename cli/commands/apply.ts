// vcctl apply -f FILE|DIR|- [-R] [--dry-run=client|server] [--prune -l SELECTOR]

import { applyObjects, ApplyInterruptedError, pruneObjects, refOf, type ApplyResult } from '../../api/apply/index.js';
import type { ObjectRef } from '../../api/store/types.js';
import { loadManifests, type Manifest } from '../../api/input/index.js';
import { oneOf, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { displayName, namespaceOf } from '../kinds-arg.js';
import { closeEarly, openEarly, withStore } from '../store.js';

const USAGE = `Usage: vcctl apply -f FILE|DIR|- [-R] [--dry-run=client|server] [--prune -l SELECTOR]

Creates or updates objects from YAML manifests (several documents per file, separated by ---).
Updates are a three-way merge: fields you removed from a manifest since the last apply are
removed, fields written by others (status, labels added by hand) are kept. Prints one line per
object: <kind>/<name> created|configured|unchanged.

What apply guarantees:
  - Every document is read, validated and merged with the stored object before the first write:
    one invalid document (or merged object) and nothing is written.
  - Writes go out in store batches of up to 100 objects, up to 4 of them at once; each batch is
    atomic (all of it is stored or none). A large apply is therefore not atomic as a whole.
  - Interrupted (Ctrl-C, SIGINT or SIGTERM), apply finishes the batches in flight, writes no
    further batch, prints the line of every object written, says which were not written, and
    exits 130 (SIGINT) or 143 (SIGTERM). Killed outright (SIGKILL, a crash), it leaves whole
    batches written and the rest not. Either way, applying the same files again finishes the
    job (what was written shows as unchanged).

Flags:
  -f, --filename PATH    a file, a directory (*.yaml, *.yml, *.json) or - for stdin; repeatable
  -R, --recursive        descend into subdirectories of a directory
      --dry-run MODE     client: show what would happen; server: also check what the store would
                         refuse (stale resourceVersion, objects being deleted). Nothing is written.
      --prune            delete objects applied earlier (they carry the last-applied annotation)
                         that match -l and are not in these manifests
  -l, --selector SEL     label selector for --prune (required with it)
      --batch=false      write one object at a time instead of in store batches
  -n, --namespace NS     namespace for objects that name none; objects naming another one fail
      --store URL        the store (default $VCCTL_STORE, else the embedded store)`;

const FLAGS = {
  filename: { type: 'string', short: 'f', multiple: true },
  recursive: { type: 'boolean', short: 'R' },
  'dry-run': { type: 'string' },
  prune: { type: 'boolean' },
  selector: { type: 'string', short: 'l' },
  batch: { type: 'boolean' },
  'field-manager': { type: 'string' },
} as const;

const command: Command = {
  summary: 'Create or update objects from manifests (three-way merge)',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, FLAGS);
    const files = args.strs('filename');
    if (files.length === 0) throw new UsageError('give the manifests with -f FILE|DIR|-');
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`);
    const dryRun = oneOf('dry-run', args.str('dry-run'), ['client', 'server', 'none'] as const);
    const selector = args.str('selector');
    if (args.bool('prune') && selector === undefined) {
      throw new UsageError('--prune needs -l SELECTOR (which objects may be pruned)');
    }
    if (selector !== undefined && !args.bool('prune')) throw new UsageError('-l only goes with --prune');
    // An etcd store connects while the manifests are read; they are still all read and
    // validated before anything is written, and their errors come first.
    const early = openEarly(args, ctx);
    let manifests: Manifest[];
    try {
      manifests = await loadManifests(files, {
        recursive: args.bool('recursive'),
        stdin: ctx.stdin,
        namespace: namespaceOf(args),
        enforceNamespace: args.namespace !== undefined,
      });
      if (manifests.length === 0) throw new UsageError(`no objects found in ${files.join(', ')}`);
    } catch (err) {
      closeEarly(early);
      throw err;
    }
    const mode = dryRun === 'none' ? undefined : dryRun;
    const suffix = mode === 'server' ? ' (server dry run)' : mode === 'client' ? ' (dry run)' : '';
    return withStore(args, ctx, async (store) => {
      const interrupt = new AbortController();
      const onSignal = (sig: NodeJS.Signals) => interrupt.abort(sig);
      // Only the first signal is ours: a second one finds the default handler and ends the process.
      if (!mode) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, onSignal);
      let results: ApplyResult[];
      try {
        results = await applyObjects(store, manifests.map((m) => m.object), {
          defaulted: manifests.map((m) => m.defaulted), // validated already: creates take them
          dryRun: mode,
          batch: args.flag('batch', true),
          fieldManager: args.str('field-manager') ?? 'vcctl',
          signal: interrupt.signal,
        });
      } catch (err) {
        if (!(err instanceof ApplyInterruptedError)) throw err;
        for (const r of err.written) ctx.stdout.write(`${displayName(r.ref.kind, r.ref.name)} ${r.action}\n`);
        ctx.stderr.write(`${interruptedSummary(err)}\n`);
        return err.reason === 'SIGTERM' ? 143 : 130;
      } finally {
        for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, onSignal);
      }
      // One write for all lines (a thousand writes to a pipe are a thousand system calls).
      ctx.stdout.write(results.map((r) => `${displayName(r.ref.kind, r.ref.name)} ${r.action}${suffix}\n`).join(''));
      if (args.bool('prune')) {
        const pruned = await pruneObjects(store, {
          keep: manifests.map((m) => refOf(m.object)),
          labelSelector: selector,
          namespace: namespaceOf(args),
          dryRun: mode,
        });
        for (const p of pruned) ctx.stdout.write(`${displayName(p.ref.kind, p.ref.name)} pruned${suffix}\n`);
      }
      return 0;
    }, early);
  },
};

/** What an interrupted apply did not write, for the user to act on. */
function interruptedSummary(err: ApplyInterruptedError): string {
  const total = err.written.length + err.notWritten.length;
  const shown = err.notWritten.slice(0, 10).map((r: ObjectRef) => displayName(r.kind, r.name));
  const more = err.notWritten.length - shown.length;
  return [
    `error: interrupted by ${err.reason}: ${err.written.length} of ${total} objects written or unchanged (above), ${err.notWritten.length} not written:`,
    `error:   ${shown.join(', ')}${more > 0 ? `, and ${more} more` : ''}`,
    'error: apply the same files again to write the rest (what was written shows as unchanged)',
  ].join('\n');
}

export default command;
