import assert from 'node:assert/strict';
import { API_VERSION, type VirtualCluster, type VirtualNode } from '../../api/types.js';
import {
  clusterAddresses, gatewayAddress, nodeAddress, nodeCapacity, vmAddress,
} from '../../reconcilers/network/addresses.js';

describe('VC addresses', () => {
  it('gives node i the (i+2)-th host address and .1 as gateway', () => {
    assert.equal(gatewayAddress('10.10.1.0/24'), '10.10.1.1');
    assert.deepEqual(clusterAddresses('10.10.1.0/24', 3), ['10.10.1.2', '10.10.1.3', '10.10.1.4']);
    assert.equal(nodeAddress('10.10.1.77/24', 0), '10.10.1.2');
    assert.equal(nodeAddress('172.16.0.0/16', 300), '172.16.1.46');
  });
  it('refuses an index past the subnet and malformed subnets', () => {
    assert.equal(nodeCapacity('10.0.0.0/29'), 5);
    assert.equal(nodeAddress('10.0.0.0/29', 4), '10.0.0.6');
    assert.throws(() => nodeAddress('10.0.0.0/29', 5), /room for 5/);
    assert.throws(() => nodeAddress('10.0.0/24', 0), /not an IPv4 CIDR/);
    assert.throws(() => nodeAddress('10.0.0.0/31', 0), /not a usable/);
  });
});

describe('vmAddress (the one derivation runtime and network share)', () => {
  const vc = (spec?: string, status?: string): VirtualCluster => ({
    apiVersion: API_VERSION, kind: 'VirtualCluster', metadata: { name: 's', namespace: 'default' },
    spec: {
      template: 't', nodes: 8, node: { vcpus: 1, memoryMiB: 512, diskGiB: 1, swapMiB: 0 },
      placement: { strategy: 'Block', mode: 'Lazy' }, state: 'Running',
      ...(spec ? { network: { subnet: spec } } : {}),
    },
    ...(status ? { status: { subnet: status } } : {}),
  });
  const vn = (index: number): VirtualNode => ({
    apiVersion: API_VERSION, kind: 'VirtualNode', metadata: { name: `s-${index}`, namespace: 'default' },
    spec: { cluster: 's', index, vcpus: 1, memoryMiB: 512 },
  });
  const cases: [string, VirtualCluster | undefined, VirtualNode, ReturnType<typeof vmAddress>][] = [
    ['the subnet the spec asks for', vc('10.10.1.0/24'), vn(0), { ip: '10.10.1.2', subnet: '10.10.1.0/24' }],
    ['the spec wins over the assigned one', vc('10.10.1.0/24', '10.20.0.0/24'), vn(3), { ip: '10.10.1.5', subnet: '10.10.1.0/24' }],
    ['the subnet the subnet controller assigned', vc(undefined, '10.20.0.0/24'), vn(1), { ip: '10.20.0.3', subnet: '10.20.0.0/24' }],
    ['no subnet yet', vc(), vn(0), undefined],
    ['no VC in the cache', undefined, vn(0), undefined],
    ['an index past the subnet', vc('10.0.0.0/29'), vn(5), undefined],
    ['a malformed subnet', vc('10.0.0/24'), vn(0), undefined],
    ['a VM without spec', vc('10.10.1.0/24'), { ...vn(0), spec: undefined }, undefined],
  ];
  for (const [what, c, v, want] of cases) {
    it(what, () => assert.deepEqual(vmAddress(c, v), want));
  }
});
