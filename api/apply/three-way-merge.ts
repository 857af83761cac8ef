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
 * taken by its own keys, as isPlainObject says). Written by JSON.stringify itself, of the value
 * where its keys are already in order (manifests mostly are, in most of their objects) and of
 * key-sorted copies of the objects that are not: one flat string, no copy of what is in order.
 */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(sorted(v));
}

/**
 * `v` itself when JSON.stringify writes it as it writes a key-sorted copy, else such a copy
 * (of the parts out of order; the rest is shared). A plain object is taken as it is when its keys
 * are in ascending order (then the copy's, index keys first, are the same), none is `__proto__`
 * (a copy made by assignment has no such key), it has no toJSON function (JSON.stringify would
 * call it; a copy's keys are written instead) and every value is taken as it is. Any other object
 * (a Date, a Map, a boxed value) is copied by its own keys, as the key-sorted copy is.
 */
function sorted(v: unknown): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const s = sorted(x);
      if (out) out[i] = s;
      else if (s !== x) {
        out = v.slice(0, i);
        out[i] = s;
      }
    }
    if (!out && typeof (v as { toJSON?: unknown }).toJSON === 'function') out = Array.from(v, (x) => x);
    return out ?? v;
  }
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const proto: unknown = Object.getPrototypeOf(o);
  let inOrder = (proto === Object.prototype || proto === null) && typeof o.toJSON !== 'function';
  for (let i = 0; inOrder && i < keys.length; i++) {
    if (keys[i] === '__proto__' || (i > 0 && !(keys[i - 1] < keys[i]))) inOrder = false;
  }
  if (!inOrder) {
    const out: Record<string, unknown> = {};
    for (const k of keys.sort()) {
      const x = o[k];
      // `__proto__` would set the copy's prototype (no key of its own); a function is dropped by
      // JSON.stringify anyway, and a toJSON one would be called.
      if (k !== '__proto__' && typeof x !== 'function') out[k] = sorted(x);
    }
    return out;
  }
  let out: Record<string, unknown> | undefined;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    const x = o[k];
    const s = sorted(x);
    if (out) out[k] = s;
    else if (s !== x) {
      out = {};
      for (let j = 0; j < i; j++) out[keys[j]] = o[keys[j]];
      out[k] = s;
    }
  }
  return out ?? o;
}
