// Reading what xl prints: `xl list -l` (JSON) and `xl list` (the table) into domains and their
// states, xl's names for a domain mid-migration, and the timed lines of a running `xl migrate`
// (XlLineClock: the downtime xl itself does not print). Pure; XenDriver runs the commands.

import type { DomainState } from './types.js';

export interface XlListEntry {
  domid: number;
  config?: {
    c_info?: { name?: string };
    b_info?: { max_vcpus?: number; max_memkb?: number; target_memkb?: number };
  };
}

/** Parses `xl list -l` (a JSON array; older xl prints nothing for no domains). Domain-0 is left out. */
export function parseXlListLong(json: string): XlListEntry[] {
  const text = json.trim();
  if (!text) return [];
  const arr = JSON.parse(text) as XlListEntry[];
  return arr.filter((e) => e.domid !== 0);
}

/** Parses `xl list` (the table) into name -> state letters, e.g. "-b----". */
export function parseXlListStates(table: string): Map<string, string> {
  return new Map([...parseXlListTable(table)].map(([name, e]) => [name, e.letters]));
}

/** The `xl list` table: each domain's state letters and id, by its xl name. */
export function parseXlListTable(table: string): Map<string, { letters: string; domid: number }> {
  const out = new Map<string, { letters: string; domid: number }>();
  for (const line of table.split('\n').slice(1)) {
    // Name may contain spaces: the last five columns are ID Mem VCPUs State Time.
    const m = /^(.*\S)\s+(\d+)\s+(\d+)\s+(\d+)\s+([-rbpscd]{6})\s+([\d.]+)\s*$/.exec(line);
    if (m) out.set(m[1]!, { letters: m[5]!, domid: Number(m[2]) });
  }
  return out;
}

export function stateFromLetters(letters: string | undefined): DomainState {
  if (!letters) return 'running';
  if (letters.includes('p')) return 'paused';
  if (letters.includes('s') || letters.includes('c') || letters.includes('d')) return 'shutoff';
  return 'running';
}

/** xl's names for a domain mid-migration: `<name>--incoming` on the target, `<name>--migratedaway` on the source. */
export function splitMigrationName(xlName: string): { name: string; state?: DomainState } {
  const m = /^(.*)--(incoming|migratedaway)$/.exec(xlName);
  if (!m) return { name: xlName };
  return { name: m[1]!, state: m[2] === 'incoming' ? 'incoming' : 'migrating' };
}

/** The line a section of a several-command script ends with: `printf '\n@@vl-status %s\n' $?`. */
const STATUS_LINE = /\n@@vl-status (\d+)\n/;

/**
 * The sections of a script whose every command is followed by `printf '\n@@vl-status %s\n' $?`
 * (xen-scripts.ts XL_LIST_SCRIPT): each command's output and exit status, in order. Fewer than
 * `count` status lines (the script was cut short) is an error naming what was printed.
 */
export function splitStatusSections(stdout: string, count: number): { out: string; code: number }[] {
  const out: { out: string; code: number }[] = [];
  let rest = stdout;
  for (let i = 0; i < count; i++) {
    const m = STATUS_LINE.exec(rest);
    if (!m) throw new Error(`expected ${count} command statuses, found ${i} in: ${stdout.slice(0, 200)}`);
    out.push({ out: rest.slice(0, m.index), code: Number(m[1]) });
    rest = rest.slice(m.index + m[0].length);
  }
  return out;
}

/** libxl (xl -vvv) asks the guest to suspend: the guest stops running on the source. */
const XL_SUSPEND_LINE = /issuing (?:PV|PVH\/HVM) suspend request/;
/** The target's xl has unpaused the domain: it runs there. */
const XL_STARTED_LINE = /migration target: Domain started/;

/**
 * The lines of a running `xl migrate`, each stamped with the time it reached us. xl prints no
 * downtime; downtimeMs() is the time from libxl's suspend request to the target's report that the
 * domain started, as both lines arrived over the same SSH channel (-1 when either is missing).
 */
export class XlLineClock {
  private readonly stamped: { at: number; line: string }[] = [];
  private partial = '';

  constructor(private readonly now: () => number = Date.now) {}

  add(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop()!;
    const at = this.now();
    for (const line of parts) this.stamped.push({ at, line });
  }

  /** Everything so far, without the lines matching `drop` (libxl's debug chatter). */
  text(drop?: RegExp): string {
    return [...this.stamped.map((s) => s.line), this.partial].filter((l) => !drop || !drop.test(l)).join('\n');
  }

  /** From libxl's suspend request until now (-1 without it): a downtime that ends with our own unpause. */
  sinceSuspendMs(): number {
    const from = this.stamped.find((s) => XL_SUSPEND_LINE.test(s.line));
    return from ? this.now() - from.at : -1;
  }

  /**
   * The lines from libxl's suspend request to the target's start (or the end), each with its
   * arrival in ms after the suspend request: where the downtime goes (hack/bench-hypervisor --xen).
   */
  switchoverTimeline(drop?: RegExp): { ms: number; line: string }[] {
    const i = this.stamped.findIndex((s) => XL_SUSPEND_LINE.test(s.line));
    if (i < 0) return [];
    const from = this.stamped[i]!.at;
    const end = this.stamped.findIndex((s, j) => j >= i && XL_STARTED_LINE.test(s.line));
    return this.stamped.slice(i, end < 0 ? undefined : end + 1).filter((s) => !drop || !drop.test(s.line)).map((s) => ({ ms: s.at - from, line: s.line }));
  }

  downtimeMs(): number {
    const from = this.stamped.find((s) => XL_SUSPEND_LINE.test(s.line));
    const to = this.stamped.find((s) => XL_STARTED_LINE.test(s.line));
    return from && to && to.at >= from.at ? to.at - from.at : -1;
  }
}
