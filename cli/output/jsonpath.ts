// The subset of kubectl's JSONPath that `wait --for=jsonpath=` needs:
//   {.status.phase}   {.spec.nodes}   {.status.nodes[0].ip}   {.status.nodes[*].phase}
//   {.status.conditions[?(@.type=="Ready")].status}

import { UsageError } from '../args.js';

type Step = { key: string } | { index: number } | { all: true } | { filter: { path: string[]; value: string } };

/** Compiles a JSONPath expression; a malformed one (unbalanced braces, no path, a step it cannot
 * read) is a UsageError, never a path that matches something else. */
export function compileJsonPath(expr: string): (obj: unknown) => unknown[] {
  const trimmed = expr.trim();
  const opens = trimmed.startsWith('{');
  if (opens !== trimmed.endsWith('}') || trimmed.slice(1, -1).includes('{') || (opens && trimmed.slice(1, -1).includes('}'))) {
    throw new UsageError(`jsonpath "${expr}": unbalanced braces; write one path in braces, e.g. {.status.phase}`);
  }
  const text = opens ? trimmed.slice(1, -1).trim() : trimmed;
  if (!text.startsWith('.')) throw new UsageError(`jsonpath "${expr}" must start with "." (e.g. {.status.phase})`);
  const steps: Step[] = [];
  const re = /\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\*\]|\[\?\(@((?:\.[A-Za-z0-9_-]+)+)\s*==\s*(?:"([^"]*)"|'([^']*)'|([^)\s]+))\)\]/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw new UsageError(`jsonpath "${expr}": cannot parse at "${text.slice(pos)}"`);
    if (m[1] !== undefined) steps.push({ key: m[1] });
    else if (m[2] !== undefined) steps.push({ index: Number(m[2]) });
    else if (m[3] !== undefined) steps.push({ filter: { path: m[3].slice(1).split('.'), value: m[4] ?? m[5] ?? m[6] } });
    else steps.push({ all: true });
    pos = re.lastIndex;
  }
  return (obj) => {
    let cur: unknown[] = [obj];
    for (const s of steps) {
      const next: unknown[] = [];
      for (const v of cur) {
        if ('key' in s) {
          if (v && typeof v === 'object' && !Array.isArray(v) && s.key in v) next.push((v as Record<string, unknown>)[s.key]);
        } else if ('index' in s) {
          if (Array.isArray(v) && s.index < v.length) next.push(v[s.index]);
        } else if ('all' in s) {
          if (Array.isArray(v)) next.push(...v);
          else if (v && typeof v === 'object') next.push(...Object.values(v));
        } else if (Array.isArray(v)) {
          for (const item of v) {
            let x: unknown = item;
            for (const k of s.filter.path) x = x && typeof x === 'object' ? (x as Record<string, unknown>)[k] : undefined;
            if (x !== undefined && String(x) === s.filter.value) next.push(item);
          }
        }
      }
      cur = next;
    }
    return cur;
  };
}
