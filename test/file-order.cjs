// The order in which `npm test` hands its files to the two parallel workers: longest first, by the
// seconds each file took in a measured run (test/durations.json), so that the long files (the full
// nodes', the end-to-end ones) do not start last and leave one worker alone at the end. Every file
// matching test/**/*.test.ts is in the list exactly once: a file the table does not know yet comes
// in with a guess from its tier (a new full-node file is guessed long, so it starts early), and a
// table entry whose file is gone is ignored. test/architecture/test-tiers.test.ts checks both.
//
// Refreshing the table after a run: `VL_TEST_TIMES=/tmp/times.jsonl npm test` makes
// test/file-timer.cjs append one line per file ({"file", "seconds"}); then
// `node test/file-order.cjs --update /tmp/times.jsonl` rewrites test/durations.json from it
// (files the run did not time keep their old figure).
'use strict';

const { readdirSync, readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const ROOT = join(__dirname, '..');
const TABLE = join(__dirname, 'durations.json');

/**
 * The files of the full-long tier (`npm run test:full-long`): full-node files that take longer than
 * `npm test` can afford (README "Tests" names each and its last run); npm test never runs them.
 */
const LONG_TIER = '.full-long.test.ts';

/** Every test/**\/*.test.ts file npm test runs, repository-relative with forward slashes, sorted. */
function testFiles(root = ROOT) {
  return readdirSync(join(root, 'test'), { recursive: true })
    .map((p) => `test/${String(p).split('\\').join('/')}`)
    .filter((p) => p.endsWith('.test.ts') && !p.endsWith(LONG_TIER))
    .sort();
}

/** Seconds to assume for a file the table lacks, from its tier. */
function guessSeconds(file) {
  if (file.endsWith('.full.test.ts')) return 600;
  if (file.endsWith('.e2e.test.ts')) return 300;
  if (/\.(etcd-cluster|testbed|etcd|local)\.test\.ts$/.test(file)) return 30;
  return 5;
}

/** `files` longest first by `table` (seconds per file), unknown files by their guess; ties by name. */
function orderFiles(files, table) {
  const secs = (f) => (typeof table[f] === 'number' ? table[f] : guessSeconds(f));
  return [...files].sort((a, b) => secs(b) - secs(a) || (a < b ? -1 : a > b ? 1 : 0));
}

function readTable() {
  return JSON.parse(readFileSync(TABLE, 'utf8'));
}

/** The files of `npm test` in the order the workers take them. */
function orderedTestFiles() {
  return orderFiles(testFiles(), readTable());
}

/** Rewrites test/durations.json with the figures of a VL_TEST_TIMES file (one JSON line per file). */
function updateTable(timesFile) {
  const table = readTable();
  const files = new Set(testFiles());
  for (const line of readFileSync(timesFile, 'utf8').split('\n').filter(Boolean)) {
    const { file, seconds } = JSON.parse(line);
    if (files.has(file) && typeof seconds === 'number') table[file] = Math.round(seconds);
  }
  const kept = Object.fromEntries(Object.keys(table).filter((f) => files.has(f)).sort().map((f) => [f, table[f]]));
  writeFileSync(TABLE, `${JSON.stringify(kept, null, 1)}\n`);
  return kept;
}

module.exports = { testFiles, guessSeconds, orderFiles, orderedTestFiles, updateTable };

if (require.main === module) {
  const [flag, file] = process.argv.slice(2);
  if (flag === '--update' && file) {
    const t = updateTable(file);
    process.stdout.write(`${TABLE}: ${Object.keys(t).length} files\n`);
  } else if (!flag) {
    const t = readTable();
    process.stdout.write(orderedTestFiles().map((f) => `${t[f] ?? `~${guessSeconds(f)}`}\t${f}\n`).join(''));
  } else {
    process.stderr.write('usage: node test/file-order.cjs [--update TIMES.jsonl]\n');
    process.exit(2);
  }
}
