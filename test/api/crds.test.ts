// The CRDs in crds/ against the kind registry and the TypeScript types, and validation derived
// from them (defaults, unknown fields, cross-field rules).

import assert from 'node:assert/strict';
import { KINDS } from '../../api/kinds.js';
import { formatPath, loadCrd, validateObject } from '../../api/validation/index.js';
import { checkSchemas } from '../../api/validation/schema-validator.js';
import { explain } from '../../cli/commands/explain.js';

const issues = (o: unknown) => validateObject(o).issues.map((i) => `${formatPath(i.path)}: ${i.message}`);

describe('crds: one CRD per kind, compiled into validation', () => {
  it('every schema is valid JSON Schema (the meta-schema check run time skips)', () => {
    checkSchemas(KINDS.map((k) => k.kind));
  });

  for (const k of KINDS) {
    it(`${k.kind}: names and scope match api/kinds.ts, and an empty spec is refused`, () => {
      const crd = loadCrd(k.kind);
      assert.equal(crd.scope, k.namespaced ? 'Namespaced' : 'Cluster');
      assert.equal(`${crd.group}/${crd.version}`, 'virtualinux.org/v1alpha1');
      const r = validateObject({
        apiVersion: 'virtualinux.org/v1alpha1', kind: k.kind,
        metadata: { name: 'x', ...(k.namespaced ? { namespace: 'default' } : {}) }, spec: { bogus: 1 },
      });
      assert.ok(r.issues.some((i) => formatPath(i.path) === 'spec.bogus' && i.message.startsWith('unknown field')));
    });
  }

  it('PhysicalNode: defaults (ssh port 22, user root, qemu, ssh transport) and the host-key rule', () => {
    const pn = {
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'PhysicalNode', metadata: { name: 'blade1' },
      spec: { address: '198.18.0.11', capacity: { cores: 4, memoryMiB: 8192 }, storageRoot: '/san', transport: 'local' },
    };
    const r = validateObject(pn);
    assert.deepEqual(r.issues, []);
    assert.deepEqual(r.object.spec, {
      address: '198.18.0.11', capacity: { cores: 4, memoryMiB: 8192 }, storageRoot: '/san', transport: 'local',
      ssh: { port: 22, user: 'root' }, hypervisor: 'qemu', unschedulable: false,
    });
    assert.deepEqual(issues({ ...pn, spec: { ...pn.spec, transport: 'ssh' } }), [
      'spec.ssh.hostKey: is required when spec.transport is ssh: pin the host key (ssh-keyscan -t ed25519 ADDRESS)',
    ]);
    assert.deepEqual(issues({ ...pn, spec: { ...pn.spec, ssh: { hostKey: 'AAAA' }, hypervisor: 'kvm' } }), [
      'spec.ssh.hostKey: "AAAA" is not an SSH public host key as ssh-keyscan prints it ("ssh-ed25519 AAAA...")',
      'spec.hypervisor: must be one of qemu, xen, sim',
    ]);
  });

  it('OSTemplate: exactly one of image.path and image.tarball; revision defaults to 1', () => {
    const ost = (image: object) => ({ apiVersion: 'virtualinux.org/v1alpha1', kind: 'OSTemplate', metadata: { name: 'b' }, spec: { image } });
    assert.deepEqual(issues(ost({ format: 'qcow2' })), ['spec.image: set exactly one of path, tarball']);
    assert.deepEqual(issues(ost({ path: '/a', tarball: '/b' })), ['spec.image: set exactly one of path, tarball']);
    assert.deepEqual(issues(ost({ path: 'relative.qcow2' })), ['spec.image.path: "relative.qcow2" is not an absolute path']);
    assert.equal((validateObject(ost({ tarball: '/t.tar' })).object.spec as { revision: number }).revision, 1);
  });

  it('VirtualCluster: CIDR pattern, host bits, labels and the extension field storageDriver', () => {
    const v = (spec: object, labels?: object) => ({
      apiVersion: 'virtualinux.org/v1alpha1', kind: 'VirtualCluster',
      metadata: { name: 's', namespace: 'default', ...(labels ? { labels } : {}) }, spec: { nodes: 1, template: 't', ...spec },
    });
    assert.deepEqual(issues(v({ network: { subnet: '10.10.1.0/33' } })), ['spec.network.subnet: "10.10.1.0/33" is not an IPv4 subnet in CIDR notation (10.10.1.0/24)']);
    assert.deepEqual(issues(v({ network: { subnet: '10.10.1.7/24' } })), ['spec.network.subnet: has host bits set: did you mean 10.10.1.0/24?']);
    assert.deepEqual(issues(v({ storageDriver: 'btrfs' })), []);
    assert.deepEqual(issues(v({ storageDriver: 'zfs' })), ['spec.storageDriver: must be one of qcow2, btrfs, lvm, evms']);
    assert.deepEqual(issues(v({}, { 'rack/zone': 'a b' })), [
      'metadata.labels["rack/zone"]: "a b" is not a label value (empty, or letters, digits, \'-\', \'_\' and \'.\', starting and ending with a letter or digit, at most 63 characters)',
    ]);
  });

  it('explain reads the schema: a field with its enum, default and description', () => {
    assert.equal(explain('vc.spec.placement.strategy'), [
      'KIND:       VirtualCluster',
      'VERSION:    virtualinux.org/v1alpha1',
      'SCOPE:      Namespaced',
      '',
      'FIELD:      strategy <string>',
      '',
      'DESCRIPTION:',
      '    Block fills a physical node before using the next; Cyclic goes round-robin.',
      '',
      'ENUM: Block, Cyclic',
      'DEFAULT: "Block"',
      '',
    ].join('\n'));
    assert.match(explain('pn.spec.ssh'), /FIELDS:\n {2}port\t<integer> \(default 22\)\n/);
    assert.match(explain('vc.status.conditions'), /FIELD: {6}conditions <\[\]Object>/);
    assert.throws(() => explain('vc.spec.nope'), /field "nope" does not exist in VirtualCluster.spec; its fields: nodes, template/);
  });
});
