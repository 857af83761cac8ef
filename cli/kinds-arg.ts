// Turning the user's words into kinds and object references, as kubectl does:
// `vc`, `virtualclusters`, `vc,vn,pn`, `vc/stripes`, `vc stripes other`.

import { DEFAULT_NAMESPACE, KINDS, resolveKind, type KindInfo } from '../api/kinds.js';
import type { ObjectRef } from '../api/store/types.js';
import { UsageError, type ParsedArgs } from './args.js';
import { DNS1123_LABEL } from '../api/validation/metadata-schema.js';

export function kindOrThrow(word: string): KindInfo {
  const k = resolveKind(word);
  if (!k) {
    throw new UsageError(`the server doesn't have a resource type "${word}"; known: ${KINDS.map((x) => `${x.plural} (${x.short.join(',')})`).join(', ')}`);
  }
  return k;
}

/** The namespace a command works in: -n, else "default". */
export function namespaceOf(args: ParsedArgs): string {
  return args.namespace ?? DEFAULT_NAMESPACE;
}

export function refFor(kind: KindInfo, name: string, args: ParsedArgs): ObjectRef {
  return kind.namespaced ? { kind: kind.kind, name, namespace: namespaceOf(args) } : { kind: kind.kind, name };
}

const NAME = new RegExp(DNS1123_LABEL);

/**
 * The name in `NAME` or `KIND/NAME` (KIND in any of its words: `vn`, `virtualnode`, ...), for
 * commands that act on one kind; undefined when the word names another kind or is not a name.
 */
export function nameOfKind(word: string, kind: string): string | undefined {
  const slash = word.indexOf('/');
  if (slash >= 0 && resolveKind(word.slice(0, slash))?.kind !== kind) return undefined;
  const name = word.slice(slash + 1);
  return NAME.test(name) ? name : undefined;
}

/** `physicalnode/blade1`: how objects are named in output. */
export function displayName(kind: string, name: string): string {
  return `${kind.toLowerCase()}/${name}`;
}

export interface Targets {
  /** Kinds named without names (`get vc,vn`). */
  kinds: KindInfo[];
  /** Objects named (`get vc a b`, `get vc/a vn/b`). */
  refs: { kind: KindInfo; name: string }[];
}

/** Parses `KIND[,KIND...] [NAME...]` or `KIND/NAME [KIND/NAME...]`. */
export function parseTargets(positionals: string[]): Targets {
  if (positionals.length === 0) return { kinds: [], refs: [] };
  if (positionals.every((p) => p.includes('/'))) {
    return {
      kinds: [],
      refs: positionals.map((p) => {
        const [k, name, ...rest] = p.split('/');
        if (!name || rest.length > 0) throw new UsageError(`"${p}" is not KIND/NAME`);
        return { kind: kindOrThrow(k), name };
      }),
    };
  }
  if (positionals.some((p) => p.includes('/'))) {
    throw new UsageError('there is no need to give a kind twice: use either KIND NAME... or KIND/NAME...');
  }
  const [first, ...names] = positionals;
  const kinds = first.split(',').filter((w) => w !== '').map(kindOrThrow);
  if (names.length === 0) return { kinds, refs: [] };
  if (kinds.length > 1) throw new UsageError('names can only be given with a single kind');
  return { kinds: [], refs: names.map((name) => ({ kind: kinds[0], name })) };
}
