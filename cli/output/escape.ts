// What vcctl prints never reaches the terminal as control characters. Objects hold text anyone
// with write access to the store (or to a synced repository) chose: an OSTemplate's image path,
// an annotation, an Event about a file named with escape sequences. Printed raw, `ESC [2J` clears
// the administrator's screen, an OSC sequence retitles the window or writes to the clipboard, and
// bidi overrides reorder what is shown. So:
//   - human-readable output (tables, describe, errors) shows them as visible escapes: C0 and DEL
//     as \x1b, C1 and the Unicode format characters as \u009b, \u202e (lossy: for people);
//   - -o json and -o yaml write them as the formats' own escapes (lossless: parsing the output
//     gives the stored text back).

/**
 * The characters that act on a terminal or hide what is shown: C0 controls, DEL, C1 controls,
 * the Arabic letter mark and bidi marks, embeddings, overrides and isolates (U+061C, U+200E/F,
 * U+202A-E, U+2066-9), the line and paragraph separators (U+2028/9) and the byte-order mark.
 */
const CONTROL = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;
const CONTROL_KEEP_LINES = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;
/** What JSON.stringify leaves raw of CONTROL (it escapes C0 itself). */
const RAW_AFTER_JSON = /[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;

const SHORT: Record<string, string> = { '\n': '\\n', '\t': '\\t', '\r': '\\r' };

function visible(ch: string): string {
  if (SHORT[ch]) return SHORT[ch];
  const code = ch.charCodeAt(0);
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

function unicodeEscape(ch: string): string {
  return `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * Text for a terminal: every control character as a visible escape (ESC -> \x1b, CSI -> \u009b,
 * newline -> \n).
 * With keepLines, newline and tab stay (multi-line text such as describe's); a table cell or an
 * error line keeps neither.
 */
export function escapeControl(text: string, opts: { keepLines?: boolean } = {}): string {
  const re = opts.keepLines ? CONTROL_KEEP_LINES : CONTROL;
  re.lastIndex = 0;
  return re.test(text) ? text.replace(re, visible) : text;
}

/** JSON.stringify, with the characters it leaves raw (DEL, C1, bidi) written as \uXXXX too. */
export function safeJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(RAW_AFTER_JSON, unicodeEscape);
}

/**
 * YAML of a value, every control character written as a YAML escape: strings holding one are
 * double-quoted (the yaml package already escapes C0 there), and what it leaves raw in them
 * becomes \uXXXX. Parsing the result gives the value back.
 */
export async function safeYaml(value: unknown): Promise<string> {
  const { Document, visit } = await import('yaml'); // on first use: keeps tables' start-up small
  const doc = new Document(value, { aliasDuplicateObjects: false });
  let unsafe = false;
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string') {
        CONTROL_KEEP_LINES.lastIndex = 0; // multi-line text may stay a block scalar
        if (CONTROL_KEEP_LINES.test(node.value)) {
          node.type = 'QUOTE_DOUBLE';
          unsafe = true;
        }
      }
    },
  });
  const text = doc.toString({ lineWidth: 0 });
  return unsafe ? text.replace(RAW_AFTER_JSON, unicodeEscape) : text;
}
