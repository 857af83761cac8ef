// vcctl sync --dir DIR [--watch] [--prune] [--allow-empty] [--interval DURATION] [--name NAME]
//            [-n NS] [--store URL] [--debounce DURATION]
//
// GitOps: keeps the store in step with a directory of manifests (usually a git work tree). The
// logic is in reconcilers/gitops; this module parses flags, prints what happened (kubectl's
// `<kind>/<name> created|configured|unchanged|pruned` lines on stdout, errors on stderr) and maps
// the outcome to an exit code: 0 synced, 1 the revision was refused or failed (the GitSource
// status says why), 2 usage error.

import type { Command, CommandContext } from '../command.js';
import { UsageError, parseArgs, type ParsedArgs } from '../args.js';
import { parseDuration } from '../duration.js';
import { printError } from '../errors.js';
import { withStore } from '../store.js';
import { displayName } from '../kinds-arg.js';
import { escapeControl } from '../output/escape.js';
import { DEFAULT_NAMESPACE } from '../../api/kinds.js';
import { GitSourceSyncer, type SyncReport } from '../../reconcilers/gitops/git-source-syncer.js';
import { SYNC_FIELD_MANAGER, apiSyncDeps } from '../../reconcilers/gitops/api-sync-deps.js';
import { StoreEventRecorder } from '../../controllers/events.js';
import type { Store } from '../../api/store/types.js';
import { deriveSourceName } from '../../reconcilers/gitops/plan-sync.js';
import { DEFAULT_DEBOUNCE_MS, runSyncLoop } from '../../reconcilers/gitops/sync-loop.js';

const USAGE = `Usage: vcctl sync --dir DIR [--watch] [--prune] [--allow-empty] [--interval DURATION] [--name NAME] [-n NS]

Applies every manifest under DIR (recursively: *.yaml, *.yml, *.json; dot-directories such as
.git are skipped; symbolic links leading out of DIR and files that are not regular files, such as
FIFOs, are refused by name) with the three-way merge of "vcctl apply", PhysicalNodes and OSTemplates first,
then VirtualClusters, then the rest. All documents are validated first: one invalid document and
nothing of that revision is applied. What was applied is recorded in the GitSource NAME (default:
derived from DIR's name) in namespace NS; see it with "vcctl get gitsources" / "vcctl describe gs NAME".
The revision recorded is the checked-out commit only when what was read is exactly what it holds.
To sync from a remote inside vc-manager instead, create a GitSource with spec.url (see README).

Flags:
  --dir DIR             the directory of manifests (usually in a git work tree)
  --prune               delete objects this source applied earlier that left DIR (only those)
  --allow-empty         with --prune, allow an empty DIR to delete everything this source applied
  --watch               keep running; sync again on every change under DIR (Ctrl-C stops)
  --interval DURATION   keep running; every DURATION (30s, 5m, 1h30m) "git pull --ff-only" the
                        work tree from its remote, then sync
  --name NAME           the GitSource name (a DNS-1123 label)
  -n, --namespace NS    the GitSource's namespace, and the namespace of objects that name none
  --debounce DURATION   with --watch: quiet time after a change before syncing (default 100ms)
  --store URL           etcd://HOST:PORT[,...] or file:PATH (default $VCCTL_STORE)

Exit: 0 synced; 1 refused or failed (the error is printed and stored in the GitSource); 2 usage.`;

interface SyncFlags {
  dir: string;
  watch: boolean;
  prune: boolean;
  allowEmpty: boolean;
  interval?: string;
  intervalMs?: number;
  debounceMs: number;
  name?: string;
  namespace: string;
  /** The parsed arguments (for the store flags). */
  args: ParsedArgs;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Parses `1h30m`, `5m`, `30s`, `250ms`, `1.5s` (the GitSource CRD's interval pattern) to ms. */
function parseFlags(argv: string[]): SyncFlags {
  const args = parseArgs(argv, {
    dir: { type: 'string', short: 'd' },
    watch: { type: 'boolean', short: 'w' },
    prune: { type: 'boolean' },
    'allow-empty': { type: 'boolean' },
    interval: { type: 'string' },
    debounce: { type: 'string' },
    name: { type: 'string' },
  });
  if (args.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${args.positionals[0]}" (the directory goes after --dir)`);
  }
  const dir = args.str('dir');
  if (!dir) throw new UsageError('--dir DIR is required');
  const name = args.str('name');
  if (name !== undefined && !(DNS_LABEL.test(name) && name.length <= 63)) {
    throw new UsageError(`--name "${name}" is not a DNS-1123 label (lower-case letters, digits and "-", at most 63)`);
  }
  const namespace = args.namespace ?? DEFAULT_NAMESPACE;
  if (!(DNS_LABEL.test(namespace) && namespace.length <= 63)) throw new UsageError(`namespace "${namespace}" is not a DNS-1123 label`);
  const interval = args.str('interval');
  const intervalMs = interval === undefined ? undefined : parseDuration(interval, 'interval');
  if (intervalMs !== undefined && intervalMs < 1000) throw new UsageError(`--interval ${interval} is too short; use at least 1s`);
  const debounce = args.str('debounce');
  const prune = args.bool('prune');
  const allowEmpty = args.bool('allow-empty');
  if (allowEmpty && !prune) throw new UsageError('--allow-empty only matters with --prune');
  return {
    dir, name, namespace, prune, allowEmpty, interval, intervalMs,
    watch: args.bool('watch'),
    debounceMs: debounce === undefined ? DEFAULT_DEBOUNCE_MS : parseDuration(debounce, 'debounce'),
    args,
  };
}

function printReport(r: SyncReport, ctx: CommandContext): void {
  for (const a of r.applied) ctx.stdout.write(`${escapeControl(displayName(a.ref.kind, a.ref.name))} ${a.action}\n`);
  for (const p of r.pruned) ctx.stdout.write(`${escapeControl(displayName(p.kind, p.name))} pruned\n`);
  const gs = displayName('GitSource', r.source.metadata.name);
  if (r.outcome.ok) {
    ctx.stdout.write(`${gs} synced revision ${r.outcome.revision}: ${r.outcome.applied} applied, ${r.outcome.pruned} pruned\n`);
  } else {
    const rev = r.outcome.revision ? ` revision ${r.outcome.revision}` : '';
    ctx.stderr.write(`error: ${gs}${rev} not synced (${r.outcome.reason}):\n`);
    for (const line of r.outcome.message.split('\n')) ctx.stderr.write(`error: ${escapeControl(line)}\n`);
  }
}

const command: Command = {
  summary: 'Keep the store in step with a directory of manifests (GitOps)',
  usage: USAGE,
  async run(argv, ctx) {
    const flags = parseFlags(argv);
    return withStore(flags.args, ctx, async (store) => {
      const events = new StoreEventRecorder(store, { source: SYNC_FIELD_MANAGER });
      try {
        return await runSync(store, flags, ctx, events);
      } finally {
        await events.flush();
      }
    });
  },
};

async function runSync(store: Store, flags: SyncFlags, ctx: CommandContext, events: StoreEventRecorder): Promise<number> {
  const syncer = new GitSourceSyncer(store, {
    dir: flags.dir,
    name: flags.name ?? deriveSourceName(flags.dir),
    nameGiven: flags.name !== undefined,
    namespace: flags.namespace,
    prune: flags.prune,
    allowEmpty: flags.allowEmpty,
    interval: flags.interval,
    env: ctx.env,
    events,
  }, apiSyncDeps(flags.namespace));

  if (!flags.watch && flags.intervalMs === undefined) {
    const report = await syncer.sync();
    printReport(report, ctx);
    return report.outcome.ok ? 0 : 1;
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await runSyncLoop(syncer, {
      dir: flags.dir,
      watch: flags.watch,
      intervalMs: flags.intervalMs,
      debounceMs: flags.debounceMs,
      signal: stop.signal,
      onReport: (r) => printReport(r, ctx),
      onError: (err) => printError(err, ctx.stderr, ctx.env),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  return 0;
}

export default command;
