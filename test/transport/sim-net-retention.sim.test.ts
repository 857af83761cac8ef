// SIMULATION (drivers/transport/sim-net.ts): what a sim host keeps of the commands it ran is its
// state, never the text the commands came in. A word of an `ip -batch` line is a slice of the whole
// batch (every route of the node), and a tap address kept as that slice kept the batch alive on
// every host: at 10,000 VMs on 1,000 sim hosts a sampled heap profile of vc-manager put 136 MiB
// there (hack/bench-scale, session 13). Measured here: the heap after 64 hosts each got a 2 MiB
// batch that sets a tap's address.

import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SimNet, SimNetInterner } from '../../drivers/transport/sim-net.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 1024 * 1024;

describe('sim hosts keep no command text (sim-net)', () => {
  it('a tap address set in a large ip -batch does not keep the batch text alive', () => {
    const interner = new SimNetInterner();
    const hosts: SimNet[] = [];
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let h = 0; h < 64; h++) {
      const net = new SimNet(interner);
      assert.equal(net.run(['ip', 'tuntap', 'add', 'dev', 'vt0000000001', 'mode', 'tap'], '').code, 0);
      // a fresh text per host (as each apply builds its own), padded to ~2 MiB with blank lines (skipped, as ip does)
      const pad = `${' '.repeat(1000 + (h % 7))}\n`.repeat(2048);
      const batch = `link set dev vt0000000001 address 52:54:00:00:${(h >> 8).toString(16).padStart(2, '0')}:${(h & 255).toString(16).padStart(2, '0')}\n${pad}`;
      const r = net.run(['ip', '-batch', '-'], batch);
      assert.equal(r.code, 0, r.stderr);
      hosts.push(net);
    }
    gc();
    const grown = (process.memoryUsage().heapUsed - before) / MiB;
    console.log(`      heap grown by ${grown.toFixed(1)} MiB for 64 hosts`);
    assert.equal(hosts[5]!.links.get('vt0000000001')?.address, '52:54:00:00:00:05');
    // kept as slices: 64 x ~2 MiB; kept as values: a few KiB per host
    assert.ok(grown < 16, `${grown.toFixed(1)} MiB kept for 64 hosts`);
  });
});

describe('sim hosts\' ip -batch route lines (sim-net)', () => {
  it('the driver\'s route lines and any other spelling of them give one route; a device that is missing or a malformed line fails the batch there', () => {
    const interner = new SimNetInterner();
    const a = new SimNet(interner);
    const b = new SimNet(interner);
    const batch = (net: SimNet, lines: string[]) => net.run(['ip', '-batch', '-'], `${lines.join('\n')}\n`);
    assert.equal(batch(a, ['tuntap add dev vt0000000001 mode tap', 'route replace 10.1.0.2/32 proto 188 dev vt0000000001', 'route replace 10.2.0.0/29 proto 188 via 198.18.0.2']).code, 0);
    // The same routes, spelt with more blanks (ip's own parsing, not the line lookup), on another host.
    assert.equal(batch(b, ['tuntap add dev vt0000000001 mode tap', '  route  replace 10.1.0.2/32 proto 188 dev vt0000000001', 'route replace 10.2.0.0/29   proto 188 via 198.18.0.2 ']).code, 0);
    const listed = (net: SimNet) => JSON.parse(net.run(['ip', '-j', 'route', 'show', 'proto', '188'], '').stdout) as unknown[];
    assert.deepEqual(listed(a), [{ dst: '10.1.0.2', dev: 'vt0000000001' }, { dst: '10.2.0.0/29', gateway: '198.18.0.2' }]);
    assert.deepEqual(listed(b), listed(a));
    assert.ok(a.routes.get('10.1.0.2') === b.routes.get('10.1.0.2'), 'one shared route value');
    const missing = batch(b, ['route replace 10.3.0.2/32 proto 188 dev vt0000000009']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /Cannot find device "vt0000000009"\nCommand failed -:1/);
    const bad = batch(b, ['route replace 10.4.0.2/32 proto 188 dev', 'route replace 10.5.0.2/32 proto 188 via 198.18.0.3']);
    assert.equal(bad.code, 1, 'a line missing its device fails');
    assert.equal(b.routes.has('10.5.0.2'), false, 'the batch stops at the failing line');
  });
});
