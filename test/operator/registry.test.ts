// The registry's selection: which controllers `--controllers` keeps, and what each factory is told
// of it (ControllerEnv.runs), so that one controller does another's part only when that one runs.

import assert from 'node:assert/strict';
import type { SharedCache } from '../../controllers/cache.js';
import { silentLogger } from '../../controllers/log.js';
import type { ControllerSpec } from '../../controllers/types.js';
import { TransportCache } from '../../drivers/transport/transport-for.js';
import { buildControllerSpecs, type ControllerEnv, type ControllerFactory } from '../../operator/registry.js';

const spec = (name: string): ControllerSpec => ({ name, forKind: 'VirtualCluster', reconcile: async () => undefined });

describe('operator registry: the selected controllers and ControllerEnv.runs', () => {
  const env = (): ControllerEnv => ({ cache: {} as SharedCache, identity: 't', log: silentLogger(), transports: new TransportCache() });

  function build(only?: string[]): { names: string[]; runs: (n: string) => boolean } {
    let runs: ((n: string) => boolean) | undefined;
    const factories: ControllerFactory[] = [
      (e) => { runs = e.runs; return spec('placement/virtualcluster'); },
      () => [spec('runtime'), spec('runtime/orphans')],
      () => spec('virtualcluster'),
    ];
    const names = buildControllerSpecs(env(), factories, only).map((s) => s.name);
    assert.ok(runs, 'the factory was told');
    return { names, runs };
  }

  it('without --controllers every controller runs, and a factory is told so', () => {
    const { names, runs } = build();
    assert.deepEqual(names, ['placement/virtualcluster', 'runtime', 'runtime/orphans', 'virtualcluster']);
    assert.equal(runs('runtime'), true);
    assert.equal(runs('virtualcluster'), true);
  });

  it('with --controllers a factory is told which run, by name or by group', () => {
    const without = build(['virtualcluster', 'placement']);
    assert.deepEqual(without.names, ['placement/virtualcluster', 'virtualcluster']);
    assert.equal(without.runs('runtime'), false);
    assert.equal(without.runs('placement/virtualcluster'), true);
    const withRuntime = build(['placement', 'runtime']);
    assert.deepEqual(withRuntime.names, ['placement/virtualcluster', 'runtime', 'runtime/orphans']);
    assert.equal(withRuntime.runs('runtime'), true);
    assert.equal(withRuntime.runs('runtime/orphans'), true);
    assert.equal(withRuntime.runs('virtualcluster'), false);
  });
});
