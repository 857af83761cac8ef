// Kubernetes label selectors: parse the text form once, match many label sets.
// Grammar (as kubectl's `-l`): requirements separated by commas, each one of
//   key=value  key==value  key!=value  key in (v1,v2)  key notin (v1,v2)  key  !key
// `!=` and `notin` also match objects that lack the key (as in Kubernetes). The empty selector
// matches everything.

export type LabelRequirement =
  | { key: string; op: 'exists' | 'notExists' }
  | { key: string; op: 'in' | 'notIn'; values: string[] };

export type LabelSelector = LabelRequirement[];

export class LabelSelectorError extends Error {}

// A qualified name: optional DNS subdomain prefix and '/', then a 1-63 char name.
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

type Token = { t: 'word'; v: string; at: number } | { t: 'op'; v: string; at: number };

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t') { i++; continue; }
    const two = text.slice(i, i + 2);
    if (two === '==' || two === '!=') { out.push({ t: 'op', v: two, at: i }); i += 2; continue; }
    if ('=!(),'.includes(c)) { out.push({ t: 'op', v: c, at: i }); i++; continue; }
    const m = /^[^\s=!(),]+/.exec(text.slice(i));
    if (!m) throw new LabelSelectorError(`unexpected "${c}" at position ${i + 1}`);
    out.push({ t: 'word', v: m[0], at: i });
    i += m[0].length;
  }
  return out;
}

function checkKey(key: string): string {
  const slash = key.indexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !PREFIX.test(prefix))) {
    throw new LabelSelectorError(`invalid label key "${key}": the prefix must be a DNS subdomain`);
  }
  if (!NAME.test(name)) {
    throw new LabelSelectorError(
      `invalid label key "${key}": a name is 1-63 characters, alphanumeric, '-', '_' or '.', ` +
        'starting and ending with an alphanumeric character',
    );
  }
  return key;
}

function checkValue(v: string): string {
  if (v !== '' && !NAME.test(v)) {
    throw new LabelSelectorError(
      `invalid label value "${v}": at most 63 characters, alphanumeric, '-', '_' or '.', ` +
        'starting and ending with an alphanumeric character',
    );
  }
  return v;
}

/** Parses selector text. Throws LabelSelectorError naming the selector and the problem. */
export function parseLabelSelector(text: string): LabelSelector {
  try {
    return parseTokens(tokenize(text));
  } catch (err) {
    if (err instanceof LabelSelectorError) {
      throw new LabelSelectorError(`invalid label selector "${text}": ${err.message}`, { cause: err });
    }
    throw err;
  }
}

function parseTokens(toks: Token[]): LabelSelector {
  const reqs: LabelSelector = [];
  let i = 0;
  const peek = (): Token | undefined => toks[i];
  const describe = (t: Token | undefined): string => (t ? `"${t.v}" at position ${t.at + 1}` : 'the end');
  const word = (what: string): string => {
    const t = toks[i];
    if (!t || t.t !== 'word') throw new LabelSelectorError(`expected ${what}, found ${describe(t)}`);
    i++;
    return t.v;
  };
  const expectOp = (v: string): void => {
    const t = toks[i];
    if (!t || t.t !== 'op' || t.v !== v) throw new LabelSelectorError(`expected "${v}", found ${describe(t)}`);
    i++;
  };
  if (toks.length === 0) return reqs;
  for (;;) {
    const t = peek();
    if (t?.t === 'op' && t.v === '!') {
      i++;
      reqs.push({ key: checkKey(word('a label key after "!"')), op: 'notExists' });
    } else {
      const key = checkKey(word('a label key'));
      const n = peek();
      if (!n || (n.t === 'op' && n.v === ',')) {
        reqs.push({ key, op: 'exists' });
      } else if (n.t === 'op' && (n.v === '=' || n.v === '==' || n.v === '!=')) {
        i++;
        const v = peek();
        // `a=` selects the empty value.
        const value = v?.t === 'word' ? word('a value') : '';
        reqs.push({ key, op: n.v === '!=' ? 'notIn' : 'in', values: [checkValue(value)] });
      } else if (n.t === 'word' && (n.v === 'in' || n.v === 'notin')) {
        i++;
        expectOp('(');
        const values: string[] = [];
        for (;;) {
          const v = peek();
          values.push(checkValue(v?.t === 'word' ? word('a value') : ''));
          const sep = peek();
          if (sep?.t === 'op' && sep.v === ',') { i++; continue; }
          expectOp(')');
          break;
        }
        reqs.push({ key, op: n.v === 'in' ? 'in' : 'notIn', values });
      } else {
        throw new LabelSelectorError(
          `expected "=", "==", "!=", "in", "notin" or "," after "${key}", found ${describe(n)}`,
        );
      }
    }
    const sep = peek();
    if (!sep) return reqs;
    expectOp(',');
  }
}

export function matchesLabelSelector(sel: LabelSelector, labels: Record<string, string> | undefined): boolean {
  for (const r of sel) {
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
    switch (r.op) {
      case 'exists': if (!has) return false; break;
      case 'notExists': if (has) return false; break;
      case 'in': if (!has || !r.values.includes(labels[r.key])) return false; break;
      case 'notIn': if (has && r.values.includes(labels[r.key])) return false; break;
    }
  }
  return true;
}

/** A predicate for selector text; undefined or blank text matches everything. */
export function compileLabelSelector(text: string | undefined): (labels: Record<string, string> | undefined) => boolean {
  if (text === undefined || text.trim() === '') return () => true;
  const sel = parseLabelSelector(text);
  return (labels) => matchesLabelSelector(sel, labels);
}
