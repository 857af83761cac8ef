// A root-hook plugin of `npm test` (test/mocharc.parallel.cjs): with VL_TEST_TIMES=FILE set, it
// appends one JSON line {"file", "seconds"} per test file when the file ends, the wall time from
// before its first hook to after its last, which `node test/file-order.cjs --update FILE` turns
// into test/durations.json. Root hooks run once per file only in parallel mode; in a serial run
// (one root suite holding several files) nothing is written. Without VL_TEST_TIMES it does nothing.
'use strict';

const { appendFileSync } = require('node:fs');
const { relative } = require('node:path');

let startedMs = 0;

exports.mochaHooks = {
  beforeAll() {
    startedMs = Date.now();
  },
  afterAll() {
    const out = process.env.VL_TEST_TIMES;
    if (!out) return;
    const root = this.test && this.test.parent;
    const files = new Set([...(root ? root.suites : []), ...(root ? root.tests : [])].map((x) => x.file).filter(Boolean));
    if (files.size !== 1) return;
    const file = relative(process.cwd(), [...files][0]).split('\\').join('/');
    appendFileSync(out, `${JSON.stringify({ file, seconds: (Date.now() - startedMs) / 1000 })}\n`);
  },
};
