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

/**
 * JSON with object keys sorted: equal objects give equal text whatever the key order. The same
 * text as JSON.stringify of a key-sorted copy (every object-typed value that is not an array is
 * taken by its own keys, as isPlainObject says), written without building the copy.
 */
export function canonicalJson(v: unknown): string {
  return canonical(v) as string;
}

function canonical(v: unknown): string | undefined {
  if (Array.isArray(v)) {
    let out = '[';
    for (let i = 0; i < v.length; i++) out += `${i > 0 ? ',' : ''}${canonical(v[i]) ?? 'null'}`;
    return `${out}]`;
  }
  if (!isPlainObject(v)) return JSON.stringify(v);
  let out = '{';
  for (const k of sortedKeys(v)) {
    if (k === '__proto__') continue; // the copy's assignment set its prototype: no key of its own
    const text = canonical(v[k]);
    if (text !== undefined) out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${text}`;
  }
  return `${out}}`;
}

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;

/**
 * Keys in the order a key-sorted copy enumerates them: a JS object lists array-index keys ("0",
 * "12") first, in numeric order, then the other keys in insertion (here: sorted) order.
 */
function sortedKeys(v: Record<string, unknown>): string[] {
  const keys = Object.keys(v).sort();
  if (!keys.some((k) => isArrayIndex(k))) return keys;
  const indexes = keys.filter(isArrayIndex);
  const rest = keys.filter((k) => !isArrayIndex(k));
  return [...indexes.sort((a, b) => Number(a) - Number(b)), ...rest];
}

function isArrayIndex(k: string): boolean {
  const c = k.charCodeAt(0);
  return c >= 48 && c <= 57 && ARRAY_INDEX.test(k) && Number(k) < 4294967295;
}
