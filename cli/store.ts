// Opening the store a command works on: --store, else VCCTL_STORE, else the embedded default.
// The store modules are imported on first use only (fast start-up for commands without one).

import type { Store } from '../api/store/types.js';
import type { CommandContext } from './command.js';
import type { ParsedArgs } from './args.js';

/** Opens the store, runs fn, closes the store (also when fn throws). */
export async function withStore<T>(args: ParsedArgs, ctx: CommandContext, fn: (store: Store) => Promise<T>): Promise<T> {
  const { openStore } = await import('../api/store/open-store.js');
  const store = await openStore(args.store, ctx.env);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
