// The vcctl bundle (hack/build-cli.ts, run by npm run build) against the unbundled program:
//   - the validators it precompiles from the CRDs agree with the ones ajv compiles at run time
//     (results, errors, defaults), and a CRD that differs from the one a validator was generated
//     from is compiled at run time instead;
//   - etcd3's gRPC definitions it prepares at build time agree with @grpc/proto-loader's.
// The bundle as a process against a real etcd: bundle.etcd.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { KINDS } from '../../api/kinds.js';
import { PRECOMPILED, type PrecompiledValidator } from '../../api/validation/precompiled.js';
import { precompiledFor, precompiledModuleSource, validatorFor } from '../../api/validation/schema-validator.js';
import { crdDir } from '../../api/validation/crd-files.js';
import { etcdPackageDefinition, etcdProtoSpecs } from '../../cli/bundle/etcd-package-definition.js';

const API = 'virtualinux.org/v1alpha1';

/** Objects of every kind: the example manifests, empty and bogus specs, and each leaf of them broken. */
function samples(): unknown[] {
  const base: Record<string, unknown>[] = [];
  for (const f of ['manifests/physical-cluster.yaml', 'manifests/ostemplate-busybox.yaml', 'manifests/stripes.yaml']) {
    for (const d of parseAllDocuments(readFileSync(f, 'utf8'))) base.push(d.toJS() as Record<string, unknown>);
  }
  for (const k of KINDS) {
    const metadata = { name: 'x', ...(k.namespaced ? { namespace: 'default' } : {}), labels: { a: 'b' } };
    base.push({ apiVersion: API, kind: k.kind, metadata, spec: {} });
    base.push({ apiVersion: API, kind: k.kind, metadata: { ...metadata, name: 'Bad_Name' }, spec: { bogus: 1 }, status: { phase: 3 } });
  }
  const out: unknown[] = [...base];
  const breakers: unknown[] = [-1, 'x', 1.5, true, null, [], {}, 'a'.repeat(300), '2026-13-01T00:00:00Z', '300.1.1.1'];
  const visit = (root: Record<string, unknown>, node: unknown, path: (string | number)[]) => {
    if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) visit(root, v, [...path, Array.isArray(node) ? Number(k) : k]);
    }
    if (path.length < 2 || path[0] === 'apiVersion' || path[0] === 'kind') return;
    for (const b of breakers) {
      const copy = structuredClone(root);
      let at: Record<string | number, unknown> = copy;
      for (const p of path.slice(0, -1)) at = at[p] as Record<string | number, unknown>;
      at[path[path.length - 1]] = b;
      out.push(copy);
    }
  };
  for (const b of base) visit(b, b, []);
  return out;
}

/** What a validator says about an object: result, errors without object identity, the defaulted object. */
function verdict(validate: ReturnType<typeof validatorFor>, input: unknown) {
  const obj = structuredClone(input);
  const valid = validate(obj);
  const errors = (validate.errors ?? []).map((e) => JSON.parse(JSON.stringify(e)) as unknown);
  return { valid, errors, obj };
}

describe('vcctl bundle', function () {
  this.timeout(600_000);

  describe('precompiled validators', () => {
    let dir: string;
    let table: Record<string, PrecompiledValidator>;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'vl-precompiled-'));
      const file = join(dir, 'validators.mjs');
      // Absolute specifiers: the module lives outside the tree (formats.js is formats.ts here, under tsx).
      writeFileSync(file, precompiledModuleSource((spec) => (spec.startsWith('/')
        ? pathToFileURL(spec.replace(/\.js$/, '.ts')).href
        : pathToFileURL(resolve('node_modules', spec)).href)));
      table = ((await import(pathToFileURL(file).href)) as { PRECOMPILED: Record<string, PrecompiledValidator> }).PRECOMPILED;
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('has one validator per kind, each with the SHA-256 of its CRD file as it is now', () => {
      assert.deepEqual(Object.keys(table).sort(), KINDS.map((k) => k.kind).sort());
      for (const k of KINDS) {
        const text = readFileSync(join(crdDir(), k.crdFile));
        assert.equal(precompiledFor(k.kind, () => text), undefined, 'the sources ship no precompiled table');
      }
    });

    it('agrees with the validators ajv compiles at run time on every sample (result, errors, defaults)', () => {
      const objs = samples();
      assert.ok(objs.length > 500, `${objs.length} samples`);
      let invalid = 0;
      for (const o of objs) {
        const kind = (o as { kind: string }).kind;
        const a = verdict(validatorFor(kind), o);
        const b = verdict(table[kind].validate, o);
        assert.deepEqual(b, a, JSON.stringify(o));
        if (!a.valid) invalid++;
      }
      assert.ok(invalid > objs.length / 2 && invalid < objs.length, `${invalid} of ${objs.length} invalid`);
    });

    it('agrees on random specs and metadata (property)', () => {
      fc.assert(fc.property(fc.constantFrom(...KINDS.map((k) => k.kind)), fc.jsonValue(), fc.jsonValue(), (kind, spec, metadata) => {
        const o = { apiVersion: API, kind, metadata, spec };
        assert.deepEqual(verdict(table[kind].validate, o), verdict(validatorFor(kind), o));
      }), { numRuns: 300 });
    });

    it('is used only while the CRD text is the one it was generated from', () => {
      const saved = { ...PRECOMPILED };
      try {
        Object.assign(PRECOMPILED, table);
        const file = join(crdDir(), 'virtualcluster.yaml');
        const text = readFileSync(file, 'utf8');
        assert.equal(precompiledFor('VirtualCluster', () => text), table.VirtualCluster.validate);
        assert.equal(precompiledFor('VirtualCluster', () => text.replace('minimum: 1', 'minimum: 2')), undefined);
        assert.equal(precompiledFor('VirtualCluster', () => { throw new Error('ENOENT'); }), undefined);
      } finally {
        for (const k of Object.keys(PRECOMPILED)) delete PRECOMPILED[k];
        Object.assign(PRECOMPILED, saved);
      }
    });
  });

  describe('etcd3 package definition prepared at build time', () => {
    const proto = resolve('node_modules/etcd3/proto/rpc.proto');
    const options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

    it('has proto-loader\'s services, methods, paths, stream flags and names, and serializes alike', async () => {
      const real = protoLoader.loadSync(proto, options) as unknown as Record<string, Record<string, Record<string, unknown>>>;
      const { json, services } = await etcdProtoSpecs(proto, options);
      const lean = etcdPackageDefinition(JSON.parse(JSON.stringify(json)), JSON.parse(JSON.stringify(services)), options) as typeof real;
      const realServices = Object.keys(real).filter((k) => !('format' in real[k])).sort();
      assert.deepEqual(Object.keys(lean).sort(), realServices);
      assert.ok(realServices.includes('etcdserverpb.KV') && realServices.includes('etcdserverpb.Watch'));
      type Fn = (x: unknown) => unknown;
      const msgs: Record<string, unknown[]> = {
        '/etcdserverpb.KV/Range': [{ key: Buffer.from('/a'), range_end: Buffer.from('/b'), limit: '10' }, {}],
        '/etcdserverpb.KV/Put': [{ key: Buffer.from('k'), value: Buffer.from('v'), lease: '7', prev_kv: true }],
        '/etcdserverpb.KV/Txn': [{
          compare: [{ key: Buffer.from('k'), target: 'MOD', result: 'EQUAL', mod_revision: '3' }],
          success: [{ request_put: { key: Buffer.from('k'), value: Buffer.from('v') } }],
          failure: [{ request_range: { key: Buffer.from('k') } }],
        }],
      };
      let checked = 0;
      for (const s of realServices) {
        assert.deepEqual(Object.keys(lean[s]).sort(), Object.keys(real[s]).sort(), s);
        for (const [m, def] of Object.entries(real[s])) {
          const l = lean[s][m];
          for (const key of ['path', 'requestStream', 'responseStream', 'originalName'] as const) assert.deepEqual(l[key], def[key], `${s}.${m} ${key}`);
          for (const msg of msgs[def.path as string] ?? [{}]) {
            const bytes = (def.requestSerialize as Fn)(msg) as Buffer;
            assert.deepEqual((l.requestSerialize as Fn)(msg), bytes, `${s}.${m} request`);
            assert.deepEqual((l.requestDeserialize as Fn)(bytes), (def.requestDeserialize as Fn)(bytes));
            const res = (def.responseSerialize as Fn)((def.responseDeserialize as Fn)(Buffer.alloc(0)));
            assert.deepEqual((l.responseDeserialize as Fn)(res), (def.responseDeserialize as Fn)(res), `${s}.${m} response`);
            checked++;
          }
        }
      }
      assert.ok(checked > 40, `${checked} methods checked`);
    });
  });
});
