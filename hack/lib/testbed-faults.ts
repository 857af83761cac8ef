// Faults of testbed nodes (high availability tests, hack/testbed fail|heal):
//   failNode(dir, name)                 the node dies: SIGKILL to every process of its namespace (its
//                                       sshd, its QEMUs, every session) or, for a full node, its QEMU
//   failNode(dir, name, {partition})    only its link goes down: its processes keep running, it is
//                                       unreachable (a namespace node's eth0, a full node's tap)
//   healNode(dir, name)                 link up again and, on a namespace node, its sshd started
//                                       again (a killed full node is not restarted: `up` again)
// The power-off is the testbed fencing agent's own (drivers/fencing/testbed-agent.ts).

import { execFile } from 'node:child_process';
import { powerOffTarget, readTestbedNode } from '../../drivers/fencing/testbed-agent.js';
import { readTestbed, startSshd, TestbedError, type TestbedNode, type TestbedState } from './testbed.js';

function ip(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('ip', argv, { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new TestbedError(`ip ${argv.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}

async function load(dir: string, name: string): Promise<{ s: TestbedState; node: TestbedNode }> {
  const s = await readTestbed(dir);
  if (!s) throw new TestbedError(`no testbed in ${dir}`);
  const node = s.nodes.find((x) => x.name === name);
  if (!node) throw new TestbedError(`no node ${name} in the testbed in ${dir} (nodes: ${s.nodes.map((x) => x.name).join(', ')})`);
  return { s, node };
}

/** The link to cut: a namespace node's eth0, or a full node's tap in the bridge namespace. */
function link(s: TestbedState, node: TestbedNode): string[] {
  return node.full ? ['-n', s.bridgeNetns, 'link', 'set', node.full.tap] : ['-n', node.netns, 'link', 'set', 'eth0'];
}

export async function failNode(dir: string, name: string, opts: { partition?: boolean } = {}): Promise<string> {
  const { s, node } = await load(dir, name);
  if (opts.partition) {
    await ip([...link(s, node), 'down']);
    return `${name}: link down (its processes keep running)`;
  }
  await powerOffTarget(await readTestbedNode(s.dir, name));
  return node.full ? `${name}: QEMU killed` : `${name}: every process of namespace ${node.netns} killed`;
}

export async function healNode(dir: string, name: string): Promise<string> {
  const { s, node } = await load(dir, name);
  await ip([...link(s, node), 'up']);
  if (node.full) return `${name}: link up`;
  await startSshd(s, name);
  return `${name}: link up, sshd running`;
}
