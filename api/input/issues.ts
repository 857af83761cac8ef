// What goes wrong with user input, and how it is printed:
//   FILE: document N (line L): spec.placement.strategy: must be one of Block, Cyclic
// The CLI prefixes each line with "error: " and prints no stack trace.

export interface InputIssue {
  /** The file as the user named it; `<stdin>` for `-`. */
  file: string;
  /** 1-based position of the YAML document in the file (empty documents count too). */
  document?: number;
  /** 1-based line in the file, where known. */
  line?: number;
  /** JSON path in the object, e.g. `spec.placement.strategy`. */
  path?: string;
  message: string;
}

export function formatIssue(i: InputIssue): string {
  let where = i.file;
  if (i.document !== undefined) where += `: document ${i.document}`;
  if (i.line !== undefined) where += i.document !== undefined ? ` (line ${i.line})` : `: line ${i.line}`;
  return `${where}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** One or more input issues; nothing was written. `message` holds one formatted line per issue. */
export class ManifestError extends Error {
  constructor(public readonly issues: InputIssue[], options?: { cause?: unknown }) {
    super(issues.map(formatIssue).join('\n'), options);
    this.name = 'ManifestError';
  }
}
