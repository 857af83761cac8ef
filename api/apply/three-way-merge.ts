// Client-side apply's three-way merge (kubectl's, without strategic-merge list keys):
//   - a field in the manifest is set to the manifest's value (objects merge key by key; scalars
//     and lists are replaced whole);
//   - a field that was in the last applied manifest and is no longer in this one is removed;
//   - any other field of the live object (written by controllers or by hand) is kept.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function threeWayMerge(lastApplied: unknown, desired: unknown, live: unknown): unknown {
  if (!isPlainObject(desired) || !isPlainObject(live)) return structuredClone(desired);
  const last = isPlainObject(lastApplied) ? lastApplied : {};
  const out: Record<string, unknown> = { ...live };
  for (const k of Object.keys(last)) if (!(k in desired)) delete out[k];
  for (const [k, v] of Object.entries(desired)) out[k] = threeWayMerge(last[k], v, live[k]);
  return out;
}

/** JSON with object keys sorted: equal objects give equal text whatever the key order. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isPlainObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
  return out;
}
