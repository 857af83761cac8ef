// Keeps docs/architecture.md honest where code can: every folder its table names exists, every
// HypervisorKind the PhysicalNode CRD allows has a case in the hypervisor driver factory, and every
// storage driver the VirtualCluster CRD allows has one in the storage driver factory. A case may
// refuse a kind (xen, evms), but then with an error that names it (and, for hypervisors, says why
// in parentheses).

import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { createHypervisorDriver, HYPERVISOR_KINDS } from '../../drivers/hypervisor/index.js';
import { createStorageDriver } from '../../drivers/storage/index.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';

const root = join(import.meta.dirname, '..', '..');
const doc = readFileSync(join(root, 'docs', 'architecture.md'), 'utf8');

/** The enum of a property found anywhere under a CRD's schema (first match). */
function crdEnum(file: string, prop: string): string[] {
  const find = (node: unknown): string[] | undefined => {
    if (!node || typeof node !== 'object') return undefined;
    const o = node as Record<string, unknown>;
    const props = o.properties as Record<string, { enum?: string[] }> | undefined;
    if (props?.[prop]?.enum) return props[prop]!.enum;
    for (const v of Object.values(o)) {
      const r = find(v);
      if (r) return r;
    }
    return undefined;
  };
  const r = find(parse(readFileSync(join(root, 'crds', file), 'utf8')));
  assert.ok(r && r.length > 0, `crds/${file}: no enum for ${prop}`);
  return r;
}

/** The kind's driver, or the refusal's message (which must name the kind). */
function outcome(make: () => { kind?: string; name?: string }): { driver?: string; refused?: string } {
  try {
    const d = make();
    return { driver: d.kind ?? d.name };
  } catch (e) {
    return { refused: (e as Error).message };
  }
}

describe('docs/architecture.md', () => {
  it('every folder in the folder table exists', () => {
    const folders = [...doc.matchAll(/^\| `([^`]+\/)` \|/gm)].map((m) => m[1]!);
    assert.ok(folders.length >= 20, `folder table found (${folders.length} rows)`);
    const missing = folders.filter((f) => !existsSync(join(root, f)) || !statSync(join(root, f)).isDirectory());
    assert.deepEqual(missing, [], 'folders named in docs/architecture.md that do not exist');
  });

  it('every HypervisorKind in crds/physicalnode.yaml has its case in createHypervisorDriver', () => {
    const kinds = crdEnum('physicalnode.yaml', 'hypervisor');
    assert.deepEqual([...HYPERVISOR_KINDS].sort(), [...kinds].sort(), 'HYPERVISOR_KINDS matches the CRD');
    const transport = new LocalTransport({ host: 'doc' });
    for (const kind of kinds) {
      const r = outcome(() => createHypervisorDriver(kind as never, { transport, runRoot: '/tmp/vl-doc-run', migrationAddress: '127.0.0.1', accel: 'tcg' }));
      if (r.driver !== undefined) assert.equal(r.driver, kind, `${kind}: the factory made a ${r.driver} driver`);
      else assert.match(r.refused!, new RegExp(`\\b${kind}\\b.*\\(.+\\)|\\(.+\\).*\\b${kind}\\b`), `${kind}: refused without naming it and a reason`);
    }
    assert.ok(kinds.some((k) => outcome(() => createHypervisorDriver(k as never, { transport, runRoot: '/tmp/vl-doc-run', migrationAddress: '127.0.0.1' })).driver), 'at least one kind is wired');
    assert.throws(() => createHypervisorDriver('vmware' as never, { transport, runRoot: '/tmp/x', migrationAddress: '127.0.0.1' }), /unknown hypervisor "vmware"/);
  });

  it('every storage driver in crds/virtualcluster.yaml has its case in createStorageDriver', () => {
    const names = crdEnum('virtualcluster.yaml', 'storageDriver');
    const transport = new LocalTransport({ host: 'doc' });
    for (const name of names) {
      const r = outcome(() => createStorageDriver(name as never, transport, { lvm: { vg: 'vg0' } }));
      if (r.driver !== undefined) assert.equal(r.driver, name, `${name}: the factory made a ${r.driver} driver`);
      else assert.match(r.refused!, new RegExp(`\\b${name}\\b`), `${name}: refused without naming it`);
    }
  });
});
