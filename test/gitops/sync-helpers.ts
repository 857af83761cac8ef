// Shared pieces of the gitops sync tests: valid manifests, running `vcctl sync` in-process (the
// real command module) or as a real process, and polling the store for a resulting state.

import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { main } from '../../cli/vcctl.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function physicalNode(name: string, cores = 4): string {
  return `apiVersion: virtualinux.org/v1alpha1
kind: PhysicalNode
metadata: {name: ${name}, labels: {rack: r1}}
spec:
  address: 198.18.0.11
  ssh: {port: 22, user: root, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}
  capacity: {cores: ${cores}, memoryMiB: 8192}
  hypervisor: qemu
  storageRoot: /san
`;
}

export function osTemplate(name: string): string {
  return `apiVersion: virtualinux.org/v1alpha1
kind: OSTemplate
metadata: {name: ${name}}
spec:
  image: {path: /san/templates/${name}.qcow2, format: qcow2}
`;
}

export function virtualCluster(name: string, nodes: number, strategy = 'Block'): string {
  return `apiVersion: virtualinux.org/v1alpha1
kind: VirtualCluster
metadata: {name: ${name}, labels: {team: gitops}}
spec:
  nodes: ${nodes}
  template: busybox
  node: {vcpus: 1, memoryMiB: 256, diskGiB: 4, swapMiB: 128}
  placement: {strategy: ${strategy}, mode: Strict}
`;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(Buffer.from(c)));
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Runs `vcctl <argv>` in this process (the real dispatcher and commands) with captured output. */
export async function runVcctlInProcess(argv: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out = collect(stdout);
  const err = collect(stderr);
  const code = await main(argv, { stdout, stderr, stdin: Readable.from([]), env });
  return { code, stdout: out(), stderr: err() };
}

export interface VcctlProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `vcctl <args>` as a real process (node + tsx on cli/vcctl.ts). */
export function startVcctl(args: string[], env: NodeJS.ProcessEnv): VcctlProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'cli', 'vcctl.ts'), ...args], {
    cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString('utf8'); });
  child.stderr!.on('data', (c: Buffer) => { err += c.toString('utf8'); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** Runs vcctl to completion as a real process. */
export async function runVcctl(args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  const p = startVcctl(args, env);
  const code = await new Promise<number | null>((resolve) => p.child.once('exit', (c) => resolve(c)));
  return { code: code ?? -1, stdout: p.stdout(), stderr: p.stderr() };
}

/** Polls until check returns a value (not undefined); fails with `what` after timeoutMs. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
