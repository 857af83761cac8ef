// Rendering objects for `vcctl get`: tables (default, wide), yaml, json, name.
// One object asked for by name prints as itself; anything else prints as a kubectl List.

import { resolveKind } from '../../api/kinds.js';
import type { ApiObject } from '../../api/types.js';
import { UsageError } from '../args.js';
import { columnsFor } from './columns.js';
import { escapeControl, safeJson, safeYaml } from './escape.js';
import { renderTable } from './table.js';

export const OUTPUT_FORMATS = ['wide', 'yaml', 'json', 'name'] as const;
export type OutputFormat = 'table' | (typeof OUTPUT_FORMATS)[number];

export function parseOutput(value: string | undefined): OutputFormat {
  if (value === undefined || value === '') return 'table';
  if (!(OUTPUT_FORMATS as readonly string[]).includes(value)) {
    throw new UsageError(`-o must be one of ${OUTPUT_FORMATS.join(', ')}, got "${value}"`);
  }
  return value as OutputFormat;
}

export interface TableOptions {
  wide: boolean;
  /** Prefix a NAMESPACE column (namespaced kinds, -A). */
  withNamespace: boolean;
  /** Write names as kind/name (several kinds in one get). */
  withKind: boolean;
  /** Print the header line (off for rows of a watch after the first). */
  header?: boolean;
  now?: number;
}

/** A table of objects of one kind. */
export function renderObjectsTable(kind: string, objs: ApiObject[], opts: TableOptions): string {
  const cols = columnsFor(kind, opts.wide);
  const now = opts.now ?? Date.now();
  const namespaced = resolveKind(kind)?.namespaced ?? false;
  const headers = cols.map((c) => c.header);
  const rows = objs.map((o) => cols.map((c) => {
    const v = c.value(o, now);
    return opts.withKind && c.header === 'NAME' ? `${kind.toLowerCase()}/${v}` : v;
  }));
  if (opts.withNamespace && namespaced) {
    headers.unshift('NAMESPACE');
    objs.forEach((o, i) => rows[i].unshift(o.metadata.namespace ?? ''));
  }
  const text = renderTable(headers, rows);
  return opts.header === false ? text.slice(text.indexOf('\n') + 1) : text;
}

export function toList(objs: ApiObject[]): { apiVersion: 'v1'; kind: 'List'; items: ApiObject[] } {
  return { apiVersion: 'v1', kind: 'List', items: objs };
}

/** JSON or YAML of one object (`single`) or of a List; control characters as the format's escapes. */
export async function renderStructured(format: 'json' | 'yaml', objs: ApiObject[], single: boolean): Promise<string> {
  const value = single && objs.length === 1 ? objs[0] : toList(objs);
  return format === 'json' ? `${safeJson(value, 2)}\n` : safeYaml(value);
}

export function renderNames(objs: ApiObject[]): string {
  return objs.map((o) => `${o.kind.toLowerCase()}/${escapeControl(o.metadata.name)}\n`).join('');
}
