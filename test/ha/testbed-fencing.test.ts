// The testbed fencing agent and hack/testbed fail|heal on a real namespace testbed (root): a
// partitioned node keeps its processes (not fenced, status on), the agent's power-off leaves no
// process in its namespace (status off: the only confirmation), heal brings sshd back.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { createFencingAgent } from '../../drivers/fencing/index.js';
import { namespacePids } from '../../drivers/fencing/testbed-agent.js';
import { failNode, healNode } from '../../hack/lib/testbed-faults.js';
import { sshBanner, testbedDown, testbedUp, type TestbedState } from '../../hack/lib/testbed.js';

const DIR = '/tmp/tb-ha18-fencing';

describe('testbed fencing agent and hack/testbed fail|heal (real namespaces, root)', function () {
  this.timeout(120_000);
  let s: TestbedState;
  before(async () => {
    await testbedDown(DIR).catch(() => undefined);
    s = await testbedUp({ dir: DIR, nodes: 2 });
  });
  after(async () => {
    await testbedDown(DIR);
    await rm(DIR, { recursive: true, force: true });
  });

  it('writes fencing: {agent: testbed} for every node into physicalnodes.yaml', async () => {
    const docs = parseAllDocuments(await readFile(join(DIR, 'physicalnodes.yaml'), 'utf8')).map((d) => d.toJS());
    assert.equal(docs.length, 2);
    for (const d of docs) assert.deepEqual(d.spec.fencing, { agent: 'testbed', testbedDir: s.dir });
  });

  it('partition: unreachable but running (not off); heal: reachable again', async () => {
    const n = s.nodes[0]!;
    // a long-running process in the node, like a QEMU
    spawn('ip', ['netns', 'exec', n.netns, 'sleep', '600'], { stdio: 'ignore', detached: true }).unref();
    const agent = createFencingAgent(n.name, { agent: 'testbed', testbedDir: s.dir });
    await failNode(DIR, n.name, { partition: true });
    assert.equal(await sshBanner(n.address, n.port, 1500), false, 'partitioned node still answers');
    const st = await agent.status();
    assert.equal(st.state, 'on', st.detail);
    assert.ok((await namespacePids(n.netns))!.length >= 2);
    await healNode(DIR, n.name);
    assert.equal(await sshBanner(n.address, n.port, 3000), true);
  });

  it('power-off by the agent: no process left, status off; the other node untouched; heal restarts sshd', async () => {
    const [n, other] = [s.nodes[0]!, s.nodes[1]!];
    const agent = createFencingAgent(n.name, { agent: 'testbed', testbedDir: s.dir });
    await agent.powerOff();
    const st = await agent.status();
    assert.equal(st.state, 'off', st.detail);
    assert.deepEqual(await namespacePids(n.netns), []);
    assert.equal(await sshBanner(n.address, n.port, 1500), false);
    assert.equal(await sshBanner(other.address, other.port, 3000), true, 'the other node must still answer');
    assert.equal((await createFencingAgent(other.name, { agent: 'testbed', testbedDir: s.dir }).status()).state, 'on');
    await agent.powerOff(); // idempotent
    await healNode(DIR, n.name);
    assert.equal(await sshBanner(n.address, n.port, 3000), true);
    assert.equal((await agent.status()).state, 'on');
  });

  it('hack/testbed fail kills a node; unknown node names are refused by name', async () => {
    await failNode(DIR, s.nodes[1]!.name);
    assert.deepEqual(await namespacePids(s.nodes[1]!.netns), []);
    await assert.rejects(failNode(DIR, 'nosuch'), /no node nosuch in the testbed/);
    const missing = await createFencingAgent('nosuch', { agent: 'testbed', testbedDir: s.dir }).status();
    assert.equal(missing.state, 'unknown');
  });
});
