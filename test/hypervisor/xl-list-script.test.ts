// XenDriver.list()'s one command (xen-scripts.ts XL_LIST_SCRIPT) run by a real /bin/sh with a
// STAND-IN `xl` (a shell script printing what Xen 4.17's xl prints; Xen cannot run on this
// machine: the real xl answers it on full testbed nodes, in every *.full test that lists domains)
// and a real `find` over a run directory: the three outputs, their exit statuses, and what list()
// makes of them.

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XenDriver } from '../../drivers/hypervisor/xen-driver.js';
import { XL_LIST_SCRIPT } from '../../drivers/hypervisor/xen-scripts.js';
import { splitStatusSections } from '../../drivers/hypervisor/xl-output.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import type { ExecOptions, ExecResult } from '../../drivers/transport/types.js';

const LONG = JSON.stringify([
  { domid: 0, config: { c_info: { name: 'Domain-0' } } },
  { domid: 7, config: { c_info: { name: 'default.a' }, b_info: { max_vcpus: 1, max_memkb: 131072 } } },
], null, 4);
const TABLE = 'Name                                        ID   Mem VCPUs\tState\tTime(s)\n' +
  'Domain-0                                     0   768     1     r-----     332.3\n' +
  'default.a                                    7   128     1     -b----      83.8\n';

/** This machine as a node whose PATH has the stand-in xl first. */
class StandInTransport extends LocalTransport {
  constructor(private readonly bin: string) {
    super({ host: 'blade1' });
  }

  override exec(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return super.exec(argv, { ...opts, env: { ...opts.env, PATH: `${this.bin}:${process.env.PATH}` } });
  }
}

describe('XL_LIST_SCRIPT under /bin/sh (a stand-in xl, a real find)', () => {
  let dir: string;
  let run: string;
  let local: StandInTransport;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vl-xl-list-'));
    run = join(dir, 'run dir');
    mkdirSync(run);
    mkdirSync(join(dir, 'bin'));
    local = new StandInTransport(join(dir, 'bin'));
  });
  afterEach(async () => {
    await local.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A stand-in xl: `xl list -l` prints LONG (or fails with `failLong`), `xl list` prints TABLE. */
  const standInXl = (failLong?: number) => {
    const xl = join(dir, 'bin', 'xl');
    writeFileSync(xl, `#!/bin/sh
if [ "$1 $2" = "list -l" ]; then ${failLong ? `echo 'libxl: error: cannot init xl context' >&2; exit ${failLong}` : `cat <<'JSON'\n${LONG}\nJSON`}
elif [ "$1" = list ]; then printf '%s' '${TABLE}'
else exit 64; fi
`);
    chmodSync(xl, 0o755);
  };

  it('prints each command\'s output closed by its status line; list() reads domains, letters and the shut-off ones from it', async () => {
    standInXl();
    writeFileSync(join(run, 'default.a.cfg'), '');
    writeFileSync(join(run, 'default.off.cfg'), '');
    writeFileSync(join(run, 'default.a.cfg.lock'), '');
    const r = await local.exec(['sh', '-c', XL_LIST_SCRIPT, 'sh', run, '.migrating', '.incoming']);
    const [long, table, files] = splitStatusSections(r.stdout, 3);
    assert.deepEqual([long!.code, table!.code, files!.code], [0, 0, 0]);
    assert.equal(JSON.parse(long!.out).length, 2);
    assert.equal(table!.out, TABLE);
    assert.deepEqual(files!.out.split('\n').filter(Boolean).sort(), [join(run, 'default.a.cfg'), join(run, 'default.off.cfg')]);
    const d = new XenDriver({ transport: local, runRoot: run, migrationAddress: 'blade1.example', guestType: 'pv' });
    assert.deepEqual((await d.list()).map((x) => [x.name, x.state, x.detail, x.memoryMiB]).sort(),
      [['default.a', 'running', '-b----', 128], ['default.off', 'shutoff', undefined, undefined]]);
  });

  it('a failing xl list -l fails list() with its status and stderr; a missing run directory is no files', async () => {
    standInXl(3);
    const d = new XenDriver({ transport: local, runRoot: run, migrationAddress: 'blade1.example', guestType: 'pv' });
    await assert.rejects(d.list(), /blade1: `xl list -l` exited 3: libxl: error: cannot init xl context/);
    standInXl();
    rmSync(run, { recursive: true });
    assert.deepEqual((await d.list()).map((x) => x.name), ['default.a']);
  });

  it('splitStatusSections: a script cut short is an error, not fewer sections', () => {
    assert.deepEqual(splitStatusSections('a\n\n@@vl-status 0\n\n@@vl-status 1\n', 2), [{ out: 'a\n', code: 0 }, { out: '', code: 1 }]);
    assert.throws(() => splitStatusSections('[]\n\n@@vl-status 0\n', 3), /expected 3 command statuses, found 1/);
  });
});
