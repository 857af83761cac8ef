// vcctl explain KIND[.field.path] [--recursive]: documentation of a kind or field, read from its
// CRD's OpenAPI schema (the same schema validation uses).

import { loadCrd, type OpenApiSchema } from '../../api/validation/crd-files.js';
import { METADATA_SCHEMA } from '../../api/validation/metadata-schema.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { kindOrThrow } from '../kinds-arg.js';

const USAGE = `Usage: vcctl explain KIND[.FIELD[.FIELD...]] [--recursive]

Describes a kind or one of its fields: type, description, allowed values, default, limits and
sub-fields. Examples:
  vcctl explain vc
  vcctl explain virtualcluster.spec.placement
  vcctl explain pn.spec.ssh.port
  vcctl explain vc.spec --recursive`;

function typeOf(s: OpenApiSchema): string {
  if (s.type === 'array') return `[]${s.items ? typeOf(s.items) : 'Object'}`;
  if (s.type === 'object') {
    if (!s.properties && s.additionalProperties && typeof s.additionalProperties === 'object') {
      return `map[string]${typeOf(s.additionalProperties)}`;
    }
    return 'Object';
  }
  return s.type ?? 'Object';
}

/** Limits and choices of a field, one per line: enum, default, range, length, pattern, format. */
function constraints(s: OpenApiSchema): string[] {
  const out: string[] = [];
  if (s.enum) out.push(`ENUM: ${s.enum.map(String).join(', ')}`);
  if (s.default !== undefined) out.push(`DEFAULT: ${JSON.stringify(s.default)}`);
  if (s.minimum !== undefined || s.maximum !== undefined) out.push(`RANGE: ${s.minimum ?? '-inf'} .. ${s.maximum ?? 'inf'}`);
  if (s.maxLength !== undefined) out.push(`MAX LENGTH: ${s.maxLength}`);
  if (s.pattern) out.push(`PATTERN: ${s.pattern}`);
  if (s.format) out.push(`FORMAT: ${s.format}`);
  if (s.oneOf) out.push(`ONE OF: ${s.oneOf.map((b) => (b.required ?? []).join('+')).join(' | ')}`);
  return out;
}

function fieldLines(s: OpenApiSchema, depth: number, recursive: boolean): string[] {
  const props = s.type === 'array' && s.items ? s.items.properties : s.properties;
  const required = new Set((s.type === 'array' && s.items ? s.items.required : s.required) ?? []);
  const out: string[] = [];
  const pad = '  '.repeat(depth);
  for (const [name, p] of Object.entries(props ?? {})) {
    const child = p as OpenApiSchema;
    const tags = [required.has(name) ? '-required-' : '', child.default !== undefined ? `(default ${JSON.stringify(child.default)})` : '']
      .filter(Boolean).join(' ');
    out.push(`${pad}${name}\t<${typeOf(child)}>${tags ? ` ${tags}` : ''}`);
    if (recursive) {
      out.push(...fieldLines(child, depth + 1, true));
    } else {
      if (child.description) out.push(`${pad}  ${child.description}`);
      if (child.enum) out.push(`${pad}  one of: ${child.enum.map(String).join(', ')}`);
      out.push('');
    }
  }
  return out;
}

export function explain(path: string, recursive = false): string {
  const [kindWord, ...fields] = path.split('.');
  const kind = kindOrThrow(kindWord);
  const crd = loadCrd(kind.kind);
  let schema: OpenApiSchema = crd.schema;
  const walked: string[] = [];
  for (const f of fields) {
    const holder = schema.type === 'array' && schema.items ? schema.items : schema;
    const next = f === 'metadata' && walked.length === 0 ? METADATA_SCHEMA : holder.properties?.[f];
    if (!next) {
      const known = Object.keys(holder.properties ?? {});
      throw new UsageError(`field "${f}" does not exist in ${[kind.kind, ...walked].join('.')}${known.length ? `; its fields: ${known.join(', ')}` : ''}`);
    }
    walked.push(f);
    schema = next;
  }
  const lines = [`KIND:       ${kind.kind}`, `VERSION:    ${crd.group}/${crd.version}`, `SCOPE:      ${crd.scope}`, ''];
  if (walked.length > 0) lines.push(`FIELD:      ${walked[walked.length - 1]} <${typeOf(schema)}>`, '');
  lines.push('DESCRIPTION:', `    ${schema.description ?? '<empty>'}`);
  const c = constraints(schema);
  if (c.length) lines.push('', ...c);
  const holder = schema.type === 'array' && schema.items ? schema.items : schema;
  if (holder.properties) lines.push('', 'FIELDS:', ...fieldLines(schema, 1, recursive));
  return `${lines.join('\n').replace(/\n+$/, '')}\n`;
}

const command: Command = {
  summary: 'Document a kind or field from its schema',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { recursive: { type: 'boolean' } });
    if (args.positionals.length !== 1) throw new UsageError('give one KIND[.FIELD...], e.g. vcctl explain vc.spec.placement');
    ctx.stdout.write(explain(args.positionals[0], args.bool('recursive')));
    return 0;
  },
};

export default command;
