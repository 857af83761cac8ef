// The Node flags vc-manager runs with: its shebang says the same as VC_MANAGER_NODE_FLAGS (the npm
// bin runs through the shebang, the harnesses through the constant), and this Node takes them.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { VC_MANAGER_NODE_FLAGS } from '../../operator/node-flags.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('vc-manager Node flags', () => {
  it('the shebang of operator/vc-manager.ts gives exactly VC_MANAGER_NODE_FLAGS', () => {
    const first = readFileSync(join(ROOT, 'operator/vc-manager.ts'), 'utf8').split('\n')[0];
    assert.equal(first, `#!/usr/bin/env -S node ${VC_MANAGER_NODE_FLAGS.join(' ')}`);
  });

  it('this Node accepts them, and the young generation grows past its default with them', () => {
    // The new space's capacity once it has grown under an allocation churn: V8 grows the
    // semi-spaces up to --max-semi-space-size (16 MiB by default on 64-bit).
    const script = 'const keep = []; for (let i = 0; i < 3e6; i++) { keep.push({ i }); if (keep.length > 2e5) keep.length = 0; }' +
      ' const s = require("v8").getHeapSpaceStatistics().find((x) => x.space_name === "new_space"); console.log(s.space_size);';
    const run = (flags: readonly string[]) => Number(execFileSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim());
    const without = run([]);
    const withFlags = run(VC_MANAGER_NODE_FLAGS);
    assert.ok(withFlags > without, `new space ${withFlags} bytes with ${VC_MANAGER_NODE_FLAGS.join(' ')}, ${without} without`);
  });
});
