// VL_TRACE_EXEC (drivers/transport/exec-trace.ts): one line per command when it ends, failed ones
// too; the command's own result passed on unchanged.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { traceExec } from '../../drivers/transport/exec-trace.js';

describe('traceExec (VL_TRACE_EXEC)', () => {
  let dir: string;
  const saved = process.env.VL_TRACE_EXEC;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'vl-trace-')); });
  afterEach(() => {
    if (saved === undefined) delete process.env.VL_TRACE_EXEC;
    else process.env.VL_TRACE_EXEC = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('appends host, argv (each cut to 60 characters) and duration of finished and failed commands', async () => {
    const file = join(dir, 'trace.jsonl');
    process.env.VL_TRACE_EXEC = file;
    assert.equal(await traceExec('blade1', ['xl', 'list', '-l'], Promise.resolve(7)), 7);
    await assert.rejects(traceExec('blade2', ['sh', '-c', 'x'.repeat(100)], Promise.reject(new Error('gone'))), /gone/);
    await new Promise((r) => setImmediate(r));
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { host: string; argv: string[]; ms: number; t: number });
    assert.deepEqual(lines.map((l) => [l.host, l.argv]), [['blade1', ['xl', 'list', '-l']], ['blade2', ['sh', '-c', 'x'.repeat(60)]]]);
    assert.ok(lines.every((l) => l.ms >= 0 && l.t > 0));
  });
});
