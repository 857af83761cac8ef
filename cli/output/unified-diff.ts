// A unified diff of two texts by lines (longest common subsequence; objects are small), with
// three lines of context, as `diff -u` prints it.

export function unifiedDiff(oldText: string, newText: string, oldName: string, newName: string, context = 3): string {
  const a = oldText === '' ? [] : oldText.replace(/\n$/, '').split('\n');
  const b = newText === '' ? [] : newText.replace(/\n$/, '').split('\n');
  // lcs[i][j]: length of the LCS of a[i..] and b[j..]
  const lcs: Uint32Array[] = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  // ai, bi: how many lines of a and of b come before this line
  type Line = { op: ' ' | '-' | '+'; text: string; ai: number; bi: number };
  const lines: Line[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const at = { ai: i, bi: j };
    if (i < a.length && j < b.length && a[i] === b[j]) { lines.push({ op: ' ', text: a[i], ...at }); i++; j++; }
    else if (i < a.length && (j >= b.length || lcs[i + 1][j] >= lcs[i][j + 1])) lines.push({ op: '-', text: a[i++], ...at });
    else lines.push({ op: '+', text: b[j++], ...at });
  }
  if (!lines.some((l) => l.op !== ' ')) return '';
  const out = [`--- ${oldName}`, `+++ ${newName}`];
  let k = 0;
  while (k < lines.length) {
    if (lines[k].op === ' ') {
      k++;
      continue;
    }
    const start = Math.max(0, k - context);
    let end = k;
    // extend the hunk while changes are within 2*context lines of each other
    for (let m = k; m < lines.length; m++) {
      if (lines[m].op !== ' ') end = m;
      else if (m - end > 2 * context) break;
    }
    const stop = Math.min(lines.length, end + context + 1);
    const hunk = lines.slice(start, stop);
    const aStart = hunk[0].ai;
    const bStart = hunk[0].bi;
    const aLen = hunk.filter((l) => l.op !== '+').length;
    const bLen = hunk.filter((l) => l.op !== '-').length;
    out.push(`@@ -${aLen === 0 ? aStart : aStart + 1},${aLen} +${bLen === 0 ? bStart : bStart + 1},${bLen} @@`);
    for (const l of hunk) out.push(`${l.op}${l.text}`);
    k = stop;
  }
  return `${out.join('\n')}\n`;
}
