// Argument strings that a careless transport would mangle: every shell metacharacter, quotes,
// newlines, leading dashes, the empty string, non-ASCII text. Shared by the transport tests.

export const HOSTILE_ARGS: readonly string[] = [
  '',
  ' ',
  '-n',
  '--version',
  '-e',
  "'",
  "''",
  '"',
  '\\',
  '\\\'',
  "it's",
  '$HOME',
  '${PATH}',
  '$(id)',
  '`id`',
  '; rm -rf /nonexistent-vl-test',
  '&& echo pwned',
  '| cat',
  '> /tmp/vl-should-not-exist',
  '< /etc/passwd',
  '*',
  '?',
  '[a-z]',
  '~',
  '~root',
  '#comment',
  '!',
  '!!',
  '%s%n',
  '{a,b}',
  '(subshell)',
  'a\nb',
  '\n',
  '\r\n',
  '\t',
  'trailing space ',
  'ünïcödé ✓ 日本語 🚀',
  '\u00a0non-breaking',
  '\x01\x02\x7f',
  'x'.repeat(10_000),
  Array.from({ length: 127 }, (_, i) => String.fromCharCode(i + 1)).join(''),
];

/** argv that echoes its arguments NUL-terminated, for an exact round-trip check. */
export const ECHO_ARGV = ['printf', '%s\\0'] as const;

export function parseNulList(s: string): string[] {
  const parts = s.split('\0');
  parts.pop(); // after the last terminator
  return parts;
}
