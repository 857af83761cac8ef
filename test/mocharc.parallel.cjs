// `npm test`'s mocha configuration: .mocharc.json's, with every test file (test/**/*.test.ts) in
// the order test/file-order.cjs gives (longest first by test/durations.json), which the parallel
// workers follow, and test/file-timer.cjs (per-file times with VL_TEST_TIMES=FILE).
'use strict';

const { join } = require('node:path');
const base = require('../.mocharc.json');
const { orderedTestFiles } = require('./file-order.cjs');

module.exports = {
  ...base,
  spec: orderedTestFiles(),
  require: [...(base.require || []), join(__dirname, 'file-timer.cjs')],
};
