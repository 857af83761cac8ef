// Opening the store a command works on: --store, else VCCTL_STORE, else the embedded default.
// The store modules are imported on first use only (fast start-up for commands without one).

import type { Store } from '../api/store/types.js';
import type { CommandContext } from './command.js';
import type { ParsedArgs } from './args.js';

/** A store being opened ahead of its use (openEarly), or undefined when it is opened on use. */
export type EarlyStore = Promise<Store | undefined>;

/**
 * Starts opening the store now when it is etcd, so connecting (a network round trip or two)
 * overlaps the command's own work, e.g. reading manifests. The store is etcd's light client
 * (api/store/etcd-lite/: no grpc-js, etcd3 or protobufjs to load), which reads and writes but
 * does not watch or hold leases: only for commands that need neither (apply). The embedded
 * store, and a URL that does not parse, resolve to undefined: withStore opens them on use and
 * reports the URL's error then, as without an early start. A failure to connect is reported by
 * withStore, not here. Pass the result to withStore, or to closeEarly when the command ends
 * without using it.
 */
export function openEarly(args: ParsedArgs, ctx: CommandContext): EarlyStore {
  const opening = import('../api/store/open-store.js').then(async ({ parseStoreUrl }) => {
    let loc: ReturnType<typeof parseStoreUrl>;
    try {
      loc = parseStoreUrl(args.store, ctx.env);
    } catch {
      return undefined;
    }
    if (loc.backend !== 'etcd') return undefined;
    const { EtcdLiteStore } = await import('../api/store/etcd-lite/etcd-lite-store.js');
    return EtcdLiteStore.connect(loc.options);
  });
  opening.catch(() => undefined); // awaited (and reported) by withStore, or dropped by closeEarly
  return opening;
}

/** Closes a store opened early that the command did not use; never throws. */
export function closeEarly(early: EarlyStore): void {
  void early.then((s) => s?.close(), () => undefined).catch(() => undefined);
}

/** Opens the store (or takes the one `early` opened), runs fn, closes the store (also when fn throws). */
export async function withStore<T>(args: ParsedArgs, ctx: CommandContext, fn: (store: Store) => Promise<T>, early?: EarlyStore): Promise<T> {
  let store = early ? await early : undefined;
  if (!store) {
    const { openStore } = await import('../api/store/open-store.js');
    store = await openStore(args.store, ctx.env);
  }
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
