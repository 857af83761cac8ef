// Flag parsing for vcctl commands, in kubectl's habits: `--name=value`, `--name value`,
// `-n value`, `-nvalue`, boolean `--flag` / `--flag=false`, `--` ends the flags. Every command
// also accepts the global flags (--store, -n/--namespace, -A/--all-namespaces).

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** A string flag that may repeat (-f a -f b). */
  multiple?: boolean;
}

export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  store: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
};

export class ParsedArgs {
  constructor(
    readonly values: Map<string, string | boolean | string[]>,
    readonly positionals: string[],
  ) {}

  str(name: string): string | undefined {
    const v = this.values.get(name);
    return Array.isArray(v) ? v[v.length - 1] : typeof v === 'string' ? v : undefined;
  }
  strs(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  }
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  /** A boolean flag's value, or `dflt` when not given (so `--batch=false` can turn a default off). */
  flag(name: string, dflt: boolean): boolean {
    const v = this.values.get(name);
    return typeof v === 'boolean' ? v : dflt;
  }
  /** The store URL (--store), undefined for the default (VCCTL_STORE, then the embedded store). */
  get store(): string | undefined {
    return this.str('store');
  }
  get namespace(): string | undefined {
    return this.str('namespace');
  }
  get allNamespaces(): boolean {
    return this.bool('all-namespaces');
  }
}

export function parseArgs(argv: string[], spec: Record<string, FlagSpec>): ParsedArgs {
  const all: Record<string, FlagSpec> = { ...GLOBAL_FLAGS, ...spec };
  const byShort = new Map<string, string>();
  for (const [name, s] of Object.entries(all)) if (s.short) byShort.set(s.short, name);
  const values = new Map<string, string | boolean | string[]>();
  const positionals: string[] = [];
  const set = (name: string, value: string | boolean): void => {
    const s = all[name];
    if (s.multiple && typeof value === 'string') {
      const prev = values.get(name);
      values.set(name, [...(Array.isArray(prev) ? prev : []), value]);
    } else {
      values.set(name, value);
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      inline = eq >= 0 ? a.slice(eq + 1) : undefined;
      if (!all[name]) throw new UsageError(`unknown flag "--${name}"`);
    } else if (a.startsWith('-') && a.length > 1 && a !== '-') {
      name = byShort.get(a[1]);
      if (!name) throw new UsageError(`unknown flag "-${a[1]}"`);
      if (a.length > 2) inline = a[2] === '=' ? a.slice(3) : a.slice(2);
    } else {
      positionals.push(a);
      continue;
    }
    const s = all[name];
    if (s.type === 'boolean') {
      if (inline === undefined || inline === 'true') set(name, true);
      else if (inline === 'false') values.set(name, false);
      else throw new UsageError(`flag --${name} takes no value (or =true / =false), got "${inline}"`);
    } else {
      let v = inline;
      if (v === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`flag --${name} needs a value`);
        v = argv[++i];
      }
      set(name, v);
    }
  }
  return new ParsedArgs(values, positionals);
}

/** Checks a flag's value against a set of choices. */
export function oneOf<T extends string>(flag: string, value: string | undefined, choices: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UsageError(`--${flag} must be one of ${choices.join(', ')}, got "${value}"`);
  }
  return value as T;
}
