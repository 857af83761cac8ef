// Reading a guest console log on a node from a byte offset, in one round trip (both drivers).

import type { Transport } from '../transport/types.js';
import { HypervisorError, type ConsoleChunk } from './types.js';

/**
 * Takes the first existing file of $2...; prints its size, then its bytes from offset $1 up to that
 * size (so the returned offset never runs past what was read while the file grows).
 */
const CONSOLE_SCRIPT = `
from=$1; shift
for f in "$@"; do [ -f "$f" ] && break; done
[ -f "$f" ] || exit 3
size=$(stat -L -c %s "$f")
echo "$size"
[ "$size" -ge "$from" ] && tail -c +"$((from + 1))" "$f" | head -c "$((size - from))"
exit 0`;

/** The console text from `from` on, from the first of `candidates` that exists; empty when none does. */
export async function readConsoleLog(t: Transport, candidates: readonly string[], from: number): Promise<ConsoleChunk> {
  const r = await t.exec(['sh', '-c', CONSOLE_SCRIPT, 'sh', String(from), ...candidates]);
  if (r.code === 3) return { text: '', nextOffset: from };
  if (r.code !== 0) throw new HypervisorError(`${t.host}: reading the console log ${candidates.join(' or ')} failed: ${r.stderr.trim()}`);
  const nl = r.stdout.indexOf('\n');
  return { text: r.stdout.slice(nl + 1), nextOffset: Math.max(from, Number(r.stdout.slice(0, nl))) };
}
