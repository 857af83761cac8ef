// The pure parts of the OCFS2 shared filesystem: o2cb's cluster.conf, the validation of what
// reaches a node's shell as argv (clear errors naming the field), the kernel NFS export options and
// the fsid every node derives for a VC. The node side runs for real in
// test/testbed/full-testbed.full.test.ts (test/shared-fs/ocfs2-cases.ts).
import assert from 'node:assert/strict';
import { exportOptions, validateExport } from '../../drivers/nfs/kernel-nfs.js';
import { O2CB_TCG_TIMEOUTS, renderClusterConf, validateCluster, type O2cbCluster } from '../../drivers/shared-fs/o2cb.js';
import { Ocfs2SharedFs, sharedFsid } from '../../drivers/shared-fs/ocfs2-shared-fs.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';

const good: O2cbCluster = {
  name: 'vl1',
  members: [{ name: 'blade2', address: '198.18.0.12', number: 2 }, { name: 'blade1', address: '198.18.0.11', number: 1, port: 7778 }],
  timeouts: O2CB_TCG_TIMEOUTS,
};

describe('shared-fs: o2cb cluster.conf and validation', () => {
  it('renders the stanzas in node-number order, local heartbeat', () => {
    assert.equal(renderClusterConf(good), [
      'cluster:', '\tname = vl1', '\theartbeat_mode = local', '\tnode_count = 2', '',
      'node:', '\tcluster = vl1', '\tnumber = 1', '\tip_port = 7778', '\tip_address = 198.18.0.11', '\tname = blade1', '',
      'node:', '\tcluster = vl1', '\tnumber = 2', '\tip_port = 7777', '\tip_address = 198.18.0.12', '\tname = blade2', '',
    ].join('\n'));
  });

  it('refuses bad input naming the field', () => {
    const m = good.members;
    const cases: [Partial<O2cbCluster>, RegExp][] = [
      [{ name: 'has-dash' }, /"has-dash": name must be 1-16 letters and digits/],
      [{ name: 'x'.repeat(17) }, /name must be 1-16/],
      [{ members: [] }, /members must name at least one node/],
      [{ members: [{ ...m[0]!, name: 'a;rm -rf /' }] }, /members\[0\]\.name "a;rm -rf \/" is not a host name/],
      [{ members: [{ ...m[0]!, address: '10.0.0.256' }] }, /members\[0\]\.address "10\.0\.0\.256" is not an IPv4 address/],
      [{ members: [{ ...m[0]!, number: 255 }] }, /members\[0\]\.number 255 is not an integer from 0 to 254/],
      [{ members: [m[0]!, { ...m[1]!, number: 2 }] }, /members\[1\]\.number 2 appears twice/],
      [{ members: [m[0]!, { ...m[1]!, address: '198.18.0.12' }] }, /members\[1\]\.address "198\.18\.0\.12" appears twice/],
      [{ timeouts: { ...O2CB_TCG_TIMEOUTS, deadThreshold: 2 } }, /timeouts\.deadThreshold must be an integer from 3 to 1000/],
      [{ timeouts: { ...O2CB_TCG_TIMEOUTS, keepaliveDelayMs: 120_000 } }, /timeouts\.keepaliveDelayMs must be below idleTimeoutMs/],
    ];
    for (const [change, why] of cases) assert.throws(() => validateCluster({ ...good, ...change }), why);
  });

  it('TCG thresholds: a node is declared dead after 300 s without a heartbeat write', () => {
    assert.equal((O2CB_TCG_TIMEOUTS.deadThreshold - 1) * 2, 300);
  });
});

describe('shared-fs: kernel NFS exports and the OCFS2 volume names', () => {
  it('export options carry the fsid; bad values are refused naming the field', () => {
    const e = { path: '/vc/default/stripes', clients: '10.200.0.0/24', fsid: sharedFsid('u1') };
    validateExport(e);
    assert.equal(exportOptions(e), `rw,sync,no_subtree_check,no_root_squash,fsid=${e.fsid}`);
    assert.throws(() => validateExport({ ...e, path: '/vc/../etc' }), /NFS export path "\/vc\/\.\.\/etc"/);
    assert.throws(() => validateExport({ ...e, path: '/vc/a b' }), /NFS export path/);
    assert.throws(() => validateExport({ ...e, clients: '10.200.0.0' }), /clients "10\.200\.0\.0" must be an IPv4 CIDR/);
    assert.throws(() => validateExport({ ...e, fsid: '4242' }), /fsid "4242" must be a UUID/);
  });

  it('the fsid is a UUID derived from the VC uid alone (the same on every node), different per VC', () => {
    assert.match(sharedFsid('3f2a6c1e-9b1d-4d7e-8a55-0c1b2d3e4f50'), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(sharedFsid('a'), sharedFsid('a'));
    assert.notEqual(sharedFsid('a'), sharedFsid('b'));
  });

  it('mount point /vc/<ns>/<vc> (the path guests mount), LV <uid>_<volume>; bad names refused', () => {
    const fs = new Ocfs2SharedFs(new LocalTransport({ host: 't' }), { cluster: 'vl1' });
    const v = { namespace: 'default', vc: 'stripes', vcUid: 'u-1', name: 'stripes-shared' };
    assert.equal(fs.mountPoint(v), '/vc/default/stripes');
    assert.equal(fs.lvName(v), 'u-1_stripes-shared');
    assert.throws(() => fs.mountPoint({ ...v, vc: '../x' }), /vc "\.\.\/x" is not a DNS-1123 label/);
    assert.throws(() => fs.lvName({ ...v, vcUid: 'a b' }), /vcUid "a b" must be/);
    assert.throws(() => new Ocfs2SharedFs(new LocalTransport({ host: 't' }), { cluster: 'bad name' }), /o2cb cluster name "bad name"/);
  });
});
