import assert from 'node:assert/strict';
import { clusterAddresses, gatewayAddress, nodeAddress, nodeCapacity } from '../../reconcilers/network/addresses.js';

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
