// The testbed fencing agent: powers off a hack/testbed node from this machine. It reads the
// testbed's DIR/testbed.json (written by hack/testbed up) for the node's network namespace (a
// namespace node) or its QEMU (a full node). Power off: SIGKILL to every process of the node's
// namespace (its sshd, its QEMUs, every session), by PID, or to the full node's QEMU. Status: off
// when no process is left in that namespace (the full node's QEMU is gone); unknown when the
// testbed or the node cannot be read. Needs root, like the testbed itself.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FencingError, type FencingAgent, type PowerState } from './types.js';

/** The fields of testbed.json this agent reads (hack/lib/testbed.ts TestbedState). */
interface TestbedFile {
  nodes: { name: string; netns: string; full?: { qemuPid: number; overlay: string } }[];
}

/** What to kill on a node: a namespace's processes, or one QEMU. */
export type NodeTarget = { kind: 'namespace'; netns: string } | { kind: 'full'; qemuPid: number; overlay: string };

export async function readTestbedNode(dir: string, node: string): Promise<NodeTarget> {
  const file = join(dir, 'testbed.json');
  let s: TestbedFile;
  try {
    s = JSON.parse(await readFile(file, 'utf8')) as TestbedFile;
  } catch (e) {
    throw new FencingError(`testbed fencing: cannot read ${file}: ${(e as Error).message}`);
  }
  const n = Array.isArray(s.nodes) ? s.nodes.find((x) => x?.name === node) : undefined;
  if (!n) throw new FencingError(`testbed fencing: ${file} has no node ${node}`);
  if (n.full) return { kind: 'full', qemuPid: n.full.qemuPid, overlay: n.full.overlay };
  if (typeof n.netns !== 'string' || !/^vl-[0-9a-f]+-[A-Za-z0-9-]+$/.test(n.netns)) {
    throw new FencingError(`testbed fencing: ${file}: node ${node} has no valid netns`);
  }
  return { kind: 'namespace', netns: n.netns };
}

/** The PIDs in a network namespace (`ip netns pids`); undefined when it cannot be listed. */
export function namespacePids(netns: string): Promise<number[] | undefined> {
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'pids', netns], { timeout: 10_000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      resolve(stdout.split(/\s+/).filter((x) => /^\d+$/.test(x)).map(Number).filter((p) => p > 1 && p !== process.pid));
    });
  });
}

function qemuAlive(t: Extract<NodeTarget, { kind: 'full' }>): boolean {
  try {
    return readFileSync(`/proc/${t.qemuPid}/cmdline`, 'utf8').split('\0').some((a) => a.includes(t.overlay));
  } catch {
    return false;
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Kills every process of the node (namespace: repeatedly, until none is left or 5 s pass). */
export async function powerOffTarget(t: NodeTarget): Promise<void> {
  if (t.kind === 'full') {
    if (qemuAlive(t)) kill(t.qemuPid);
    return;
  }
  const deadline = Date.now() + 5_000;
  for (;;) {
    const pids = await namespacePids(t.netns);
    if (pids === undefined) throw new FencingError(`testbed fencing: cannot list the processes of namespace ${t.netns}`);
    if (pids.length === 0 || Date.now() > deadline) return;
    for (const p of pids) kill(p);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function targetPower(t: NodeTarget): Promise<{ state: PowerState; detail: string }> {
  if (t.kind === 'full') {
    return qemuAlive(t) ? { state: 'on', detail: `QEMU ${t.qemuPid} runs` } : { state: 'off', detail: `QEMU ${t.qemuPid} is gone` };
  }
  const pids = await namespacePids(t.netns);
  if (pids === undefined) return { state: 'unknown', detail: `cannot list the processes of namespace ${t.netns}` };
  return pids.length === 0
    ? { state: 'off', detail: `no process left in namespace ${t.netns}` }
    : { state: 'on', detail: `${pids.length} process(es) in namespace ${t.netns}` };
}

export class TestbedFencingAgent implements FencingAgent {
  readonly name = 'testbed';
  constructor(private readonly dir: string, private readonly node: string) {}

  async powerOff(): Promise<void> {
    await powerOffTarget(await readTestbedNode(this.dir, this.node));
  }

  async status(): Promise<{ state: PowerState; detail: string }> {
    let t: NodeTarget;
    try {
      t = await readTestbedNode(this.dir, this.node);
    } catch (e) {
      return { state: 'unknown', detail: (e as Error).message };
    }
    return targetPower(t);
  }
}
