// Store batches of many writes: etcd refuses a txn of more than --max-txn-ops operations (default
// 128), so a writer of many objects splits them into batches of at most BATCH_OPS (each batch
// still atomic; the writer decides what a partly written set means for it).

/** Operations per store batch, under etcd's default --max-txn-ops (128) with room for a fence. */
export const BATCH_OPS = 64;

/** `items` in slices of at most `n`. */
export function chunks<T>(items: readonly T[], n: number = BATCH_OPS): T[][] {
  if (!(n >= 1)) throw new Error(`chunks: a slice size of at least 1, got ${n}`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}
