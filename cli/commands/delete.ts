// vcctl delete (KIND NAME... | KIND/NAME... | -f FILE [-R] | KIND -l SEL | KIND --all)
//              [--wait] [--timeout=DURATION] [--cascade=background|foreground|orphan] [--ignore-not-found]

import { KINDS, resolveKind } from '../../api/kinds.js';
import { NotFoundError, type ObjectRef, type Store } from '../../api/store/types.js';
import type { ApiObject } from '../../api/types.js';
import { oneOf, parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { parseDuration } from '../duration.js';
import { displayName, namespaceOf, parseTargets, refFor } from '../kinds-arg.js';
import { withStore } from '../store.js';
import { waitForObject } from '../wait-for.js';
import { deleteWithPropagation } from '../../controllers/gc/propagation.js';

const USAGE = `Usage: vcctl delete KIND NAME... | KIND/NAME... | -f FILE|DIR|- [-R] | KIND (-l SEL | --all) [flags]

Deletes objects. An object with finalizers is marked for deletion (deletionTimestamp) and goes
when its controllers have cleaned up; --wait waits for that.

Flags:
  -f, --filename PATH       delete the objects these manifests name; repeatable
  -R, --recursive           descend into subdirectories of a directory
  -l, --selector SEL        delete the objects of KIND matching this label selector
      --all                 delete every object of KIND (in the namespace)
      --wait                wait until the objects are gone
      --timeout DURATION    with --wait: give up after this long (default 60s)
      --cascade MODE        background (default): owned objects are removed after the owner;
                            foreground: the owner stays until its owned objects are gone;
                            orphan: owned objects are kept
      --ignore-not-found    a missing object is not an error
  -n, --namespace NS        namespace of namespaced kinds (default "default")`;

export type Cascade = 'background' | 'foreground' | 'orphan';

/**
 * Deletes one object with the cascade mode: foreground and orphan put the `foregroundDeletion` or
 * `orphan` finalizer on the object first; the garbage collector of a running vc-manager does the
 * propagation (controllers/gc/propagation.ts).
 */
export async function deleteObject(store: Store, ref: ObjectRef, cascade: Cascade): Promise<ApiObject> {
  return deleteWithPropagation(store, ref, cascade);
}

const command: Command = {
  summary: 'Delete objects by name or from manifests',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, {
      filename: { type: 'string', short: 'f', multiple: true },
      recursive: { type: 'boolean', short: 'R' },
      selector: { type: 'string', short: 'l' },
      all: { type: 'boolean' },
      wait: { type: 'boolean' },
      timeout: { type: 'string' },
      cascade: { type: 'string' },
      'ignore-not-found': { type: 'boolean' },
    });
    const cascade = oneOf('cascade', args.str('cascade') ?? 'background', ['background', 'foreground', 'orphan'] as const) as Cascade;
    const timeoutMs = parseDuration(args.str('timeout') ?? '60s', 'timeout');
    const files = args.strs('filename');
    let refs: ObjectRef[] | undefined;
    let selectKind: string | undefined;
    if (files.length > 0) {
      if (args.positionals.length > 0) throw new UsageError('give either -f or names, not both');
      const { loadManifests } = await import('../../api/input/index.js');
      const manifests = await loadManifests(files, {
        recursive: args.bool('recursive'), stdin: ctx.stdin, namespace: namespaceOf(args), enforceNamespace: args.namespace !== undefined,
      });
      refs = manifests.map((m) => ({
        kind: m.object.kind, name: m.object.metadata.name,
        ...(m.object.metadata.namespace !== undefined ? { namespace: m.object.metadata.namespace } : {}),
      }));
    } else {
      const targets = parseTargets(args.positionals);
      if (targets.refs.length > 0) {
        if (args.values.has('selector') || args.bool('all')) throw new UsageError('-l and --all cannot be combined with names');
        refs = targets.refs.map((t) => refFor(t.kind, t.name, args));
      } else if (targets.kinds.length === 1 && (args.values.has('selector') || args.bool('all'))) {
        selectKind = targets.kinds[0].kind;
      } else if (targets.kinds.length > 0) {
        throw new UsageError('name the objects to delete, or select them with -l SELECTOR or --all');
      } else {
        throw new UsageError(`give what to delete: KIND NAME, KIND/NAME or -f FILE (kinds: ${KINDS.map((k) => k.short[0]).join(', ')})`);
      }
    }
    return withStore(args, ctx, async (store) => {
      if (selectKind) {
        const info = resolveKind(selectKind);
        const { items } = await store.list(selectKind, {
          ...(info?.namespaced ? { namespace: namespaceOf(args) } : {}),
          labelSelector: args.str('selector'),
        });
        refs = items.map((o) => ({ kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) }));
        if (refs.length === 0) ctx.stderr.write('No resources found\n');
      }
      let code = 0;
      const deleted: ObjectRef[] = [];
      for (const ref of refs ?? []) {
        try {
          await deleteObject(store, ref, cascade);
          deleted.push(ref);
          ctx.stdout.write(`${displayName(ref.kind, ref.name)} deleted\n`);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          if (!args.bool('ignore-not-found')) {
            ctx.stderr.write(`error: ${ref.kind.toLowerCase()} "${ref.name}" not found${ref.namespace ? ` in namespace "${ref.namespace}"` : ''}\n`);
            code = 1;
          }
        }
      }
      if (args.bool('wait')) {
        const deadline = Date.now() + timeoutMs;
        for (const ref of deleted) {
          await waitForObject(store, ref, (o) => o === undefined, Math.max(0, deadline - Date.now()), 'deletion');
        }
      }
      return code;
    });
  },
};

export default command;
