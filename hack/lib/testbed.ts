// The testbed: N physical nodes as network namespaces on this machine, each with its own address
// in 198.18.0.0/15 and a real OpenSSH server (Debian's /usr/sbin/sshd) with its own ed25519 host
// key, joined by a bridge that lives in its own namespace. Contract: API.md, "hack/testbed".
//
// Layout of DIR:
//   testbed.json            what `up` created (written BEFORE each step, so `down` works after a crash)
//   id_ed25519[.pub]        the key root logs in with on every node; authorized_keys
//   nodes/<name>/           the node's own state: host key, sshd_config, sshd.log, sshd.pid
//   san/                    the shared "SAN": one directory every node sees at the same path
//   physicalnodes.yaml      PhysicalNode objects, host keys pinned (ready for `vcctl apply`)
//   nodes.json              [{name, netns, address, port, hostKey}]
//
// Network: namespaces `vl-<id>-<node>` and `vl-<id>-br` (id: a hash of DIR, so parallel testbeds in
// other directories do not clash), each node's eth0 a veth into br0 in the bridge namespace, one
// /24 per testbed (198.18.K.0/24, K chosen free). No namespace has a default route, so nothing
// leaves the testbed. The root namespace gets one veth into the bridge with 198.18.K.1/24 so the
// controller (running in the root namespace) reaches the nodes' sshd; it does not forward. An
// `unreachable 198.18.0.0/15` route in the root namespace (while any testbed is up) keeps traffic
// to a testbed address that is already gone from following the default route out.
//
// Full nodes (`up --full`, hack/lib/full-node.ts): each node is instead a QEMU machine booting Xen
// with a Debian dom0 on the same bridge (a tap per node, the QEMUs in the bridge namespace, whose
// name is then each node's `netns`), plus DIR/san.img, the SAN block device all nodes share.
//
// Processes started over SSH on a node (qemu, ...) run inside that node's namespace; `down` ends
// every process in the node namespaces by PID, unmounts what is mounted under DIR, deletes the
// namespaces and removes the files it made.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { cpus, totalmem, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { API_VERSION, type PhysicalNode } from '../../api/types.js';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { execOk, type ExecResult } from '../../drivers/transport/types.js';
import {
  createNodeTap, fullNodePids, fullNodeState, fullTestbedState, SAN_DEVICE, startFullNodes,
  type FullNodeOptions, type FullNodeState, type FullTestbedState,
} from './full-node.js';

export const SSHD = '/usr/sbin/sshd';
const LOCK_FILE = '/run/vl-testbed.lock';
const ROOT_GUARD_ROUTE = '198.18.0.0/15';

export interface TestbedNode {
  name: string;
  netns: string;
  address: string;
  port: number;
  /** "ssh-ed25519 AAAA..." */
  hostKey: string;
  /** DIR/nodes/<name> */
  stateDir: string;
  sshdConfig: string;
  sshdLog: string;
  /** The sshd listener's PID (0 while stopped). */
  sshdPid: number;
  /** Full nodes only (hack/lib/full-node.ts): the node's QEMU; its netns is the bridge namespace. */
  full?: FullNodeState;
}

export interface TestbedState {
  version: 1;
  dir: string;
  id: string;
  /** Third and fourth octet base: nodes are <subnet>.11, .12, ...; the root side is <subnet>.1 */
  subnet: string;
  bridgeNetns: string;
  hostVeth: string;
  hostAddress: string;
  identityFile: string;
  sanDir: string;
  /** `namespace` (default; absent in older files) or `full` (QEMU machines booting Xen). */
  kind?: 'namespace' | 'full';
  /** Full testbeds only: the node image, the SAN image, memory and vCPUs per node. */
  full?: FullTestbedState;
  nodes: TestbedNode[];
}

export interface TestbedUpOptions {
  nodes: number;
  dir: string;
  /** Node names are `${namePrefix}1..N`; default "blade". */
  namePrefix?: string;
  /** spec.capacity written to physicalnodes.yaml; default: this machine's cores and memory. */
  cores?: number;
  memoryMiB?: number;
  maxVMs?: number;
  /** Full nodes (QEMU + Xen + Debian dom0) instead of network namespaces. */
  full?: FullNodeOptions;
}

export class TestbedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestbedError';
  }
}

const local = new LocalTransport({ host: 'testbed' });

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new TestbedError(
      `testbed ${what} needs root (it creates network namespaces, veths and a bridge, and starts sshd); run it as root, e.g. with sudo`,
    );
  }
}

/** The id of the testbed in DIR: 6 hex digits of a hash of the absolute path. */
export function testbedId(dir: string): string {
  return createHash('sha256').update(resolve(dir)).digest('hex').slice(0, 6);
}

function run(argv: string[]): Promise<string> {
  return execOk(local, argv, { timeoutMs: 30_000 });
}
function tryRun(argv: string[]): Promise<ExecResult> {
  return local.exec(argv, { timeoutMs: 30_000 });
}

/** Runs argv inside the node's network namespace (as root on this machine). */
export function nodeExec(node: Pick<TestbedNode, 'netns'>, argv: readonly string[], timeoutMs = 30_000): Promise<ExecResult> {
  return local.exec(['ip', 'netns', 'exec', node.netns, ...argv], { timeoutMs });
}

// ---- a machine-wide lock: up/down of parallel testbeds choose subnets and guard routes --------

export async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const fh = await open(LOCK_FILE, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = Number(await readFile(LOCK_FILE, 'utf8').catch(() => ''));
      if (holder > 0 && !pidAlive(holder)) {
        await unlink(LOCK_FILE).catch(() => {}); // a crashed holder
        continue;
      }
      if (Date.now() > deadline) throw new TestbedError(`${LOCK_FILE} is held by PID ${holder}; if no testbed command is running, remove it`);
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(LOCK_FILE).catch(() => {});
  }
}

/** True while the process exists and is not a zombie (a container init may not reap orphans). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- state -----------------------------------------------------------------------------------

function statePath(dir: string): string {
  return join(dir, 'testbed.json');
}

let saving: Promise<void> = Promise.resolve();

/** Writes testbed.json atomically; calls are serialized (sshds start in parallel). */
function saveState(s: TestbedState): Promise<void> {
  const text = JSON.stringify(s, null, 2) + '\n';
  const write = async () => {
    await writeFile(statePath(s.dir) + '.tmp', text);
    await rename(statePath(s.dir) + '.tmp', statePath(s.dir));
  };
  saving = saving.then(write, write);
  return saving;
}

/** The state of the testbed in DIR, or undefined when none is up. */
export async function readTestbed(dir: string): Promise<TestbedState | undefined> {
  try {
    return JSON.parse(await readFile(statePath(resolve(dir)), 'utf8')) as TestbedState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TestbedError(`cannot read ${statePath(resolve(dir))}: ${(e as Error).message}`, { cause: e });
  }
}

// ---- up --------------------------------------------------------------------------------------

/** Subnets (as "198.18.K" / "198.19.K") with an address or route in the root namespace. */
export async function usedSubnets(): Promise<Set<string>> {
  const used = new Set<string>();
  const text = (await run(['ip', '-4', '-o', 'addr', 'show'])) + (await run(['ip', '-4', 'route', 'show', 'table', 'all']));
  for (const m of text.matchAll(/\b(198\.1[89]\.\d{1,3})\.\d{1,3}/g)) used.add(m[1]!);
  return used;
}

function subnetFor(index: number): string {
  return index < 256 ? `198.18.${index}` : `198.19.${index - 256}`;
}

export async function testbedUp(opts: TestbedUpOptions): Promise<TestbedState> {
  requireRoot('up');
  const n = opts.nodes;
  if (!Number.isInteger(n) || n < 1 || n > 200) throw new TestbedError(`--nodes must be an integer from 1 to 200, got ${n}`);
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  if (existsSync(statePath(dir))) {
    throw new TestbedError(`a testbed is already up in ${dir}; run \`hack/testbed down --dir ${dir}\` first`);
  }
  if (!existsSync(SSHD)) throw new TestbedError(`${SSHD} not found: install openssh-server (hack/setup does)`);
  const id = testbedId(dir);
  const prefix = `vl-${id}`;
  const namePrefix = opts.namePrefix ?? 'blade';
  let full: FullTestbedState | undefined;
  try {
    full = opts.full ? fullTestbedState(dir, opts.full) : undefined;
  } catch (e) {
    throw new TestbedError((e as Error).message);
  }

  let state: TestbedState | undefined;
  try {
    await withLock(async () => {
      const used = await usedSubnets();
      const start = parseInt(id, 16) % 511;
      let subnet: string | undefined;
      for (let i = 0; i < 511 && !subnet; i++) {
        const candidate = subnetFor(1 + ((start + i) % 511));
        if (!used.has(candidate)) subnet = candidate;
      }
      if (!subnet) throw new TestbedError('no free /24 left in 198.18.0.0/15 for another testbed');
      state = {
        version: 1,
        dir,
        id,
        subnet,
        bridgeNetns: `${prefix}-br`,
        hostVeth: `vl${id}h`,
        hostAddress: `${subnet}.1`,
        identityFile: join(dir, 'id_ed25519'),
        sanDir: join(dir, 'san'),
        ...(full ? { kind: 'full' as const, full } : {}),
        nodes: Array.from({ length: n }, (_, i) => {
          const name = `${namePrefix}${i + 1}`;
          const stateDir = join(dir, 'nodes', name);
          return {
            name,
            // a full node is a QEMU in the bridge namespace, not a namespace of its own
            netns: full ? `${prefix}-br` : `${prefix}-${name}`,
            address: `${subnet}.${11 + i}`,
            port: 22,
            hostKey: '',
            stateDir,
            sshdConfig: join(stateDir, 'sshd_config'),
            sshdLog: join(stateDir, 'sshd.log'),
            sshdPid: 0,
            ...(full ? { full: fullNodeState(id, stateDir, i) } : {}),
          };
        }),
      };
      await saveState(state); // intent first: `down` can undo a half-made testbed
      await createNetwork(state);
    });
    const s = state!;
    await mkdir(s.sanDir, { recursive: true });
    await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `vl-testbed-${id}`, '-f', s.identityFile]);
    await writeFile(join(dir, 'authorized_keys'), await readFile(s.identityFile + '.pub'), { mode: 0o600 });
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege-separation directory
    for (const node of s.nodes) {
      await mkdir(node.stateDir, { recursive: true });
      const key = join(node.stateDir, 'ssh_host_ed25519_key');
      await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', node.name, '-f', key]);
      node.hostKey = (await readFile(key + '.pub', 'utf8')).trim().split(/\s+/).slice(0, 2).join(' ');
      if (!s.full) await writeFile(node.sshdConfig, sshdConfig(s, node));
    }
    await saveState(s);
    if (s.full) await startFullNodes(s, () => saveState(s), opts.full ?? {});
    else await Promise.all(s.nodes.map((node) => startSshd(s, node.name)));
    await writeOutputs(s, opts);
    return s;
  } catch (e) {
    await testbedDown(dir).catch(() => {});
    throw e;
  }
}

async function createNetwork(s: TestbedState): Promise<void> {
  await createStarNetwork({
    bridgeNetns: s.bridgeNetns, hostVeth: s.hostVeth, hostAddress: s.hostAddress,
    // a full node is not a namespace: its QEMU's tap joins the bridge, the node sets its address
    hosts: s.full ? [] : s.nodes.map((node, i) => ({ netns: node.netns, address: node.address, bridgePort: `n${i + 1}` })),
  });
  if (s.full) for (const i of s.nodes.keys()) await createNodeTap(s, i);
}

/**
 * Namespaces joined by a bridge that lives in its own namespace: each host's eth0 (ADDRESS/24) is a
 * veth into br0 (port `bridgePort`), and the root namespace gets `hostVeth` with hostAddress/24 into
 * the bridge, without forwarding. Adds the `unreachable 198.18.0.0/15` guard route when missing.
 */
export async function createStarNetwork(o: {
  bridgeNetns: string; hostVeth: string; hostAddress: string;
  hosts: { netns: string; address: string; bridgePort: string }[];
}): Promise<void> {
  const guard = await tryRun(['ip', 'route', 'show', 'type', 'unreachable', ROOT_GUARD_ROUTE]);
  if (!guard.stdout.trim()) await run(['ip', 'route', 'add', 'unreachable', ROOT_GUARD_ROUTE]);
  const br = o.bridgeNetns;
  await run(['ip', 'netns', 'add', br]);
  await run(['ip', '-n', br, 'link', 'set', 'lo', 'up']);
  await run(['ip', '-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
  await run(['ip', '-n', br, 'link', 'set', 'br0', 'up']);
  // the root side: for the controller's connections only (no forwarding, no default route)
  await run(['ip', 'link', 'add', o.hostVeth, 'type', 'veth', 'peer', 'name', 'host', 'netns', br]);
  await run(['ip', '-n', br, 'link', 'set', 'host', 'master', 'br0', 'up']);
  await run(['ip', 'addr', 'add', `${o.hostAddress}/24`, 'dev', o.hostVeth]);
  await run(['ip', 'link', 'set', o.hostVeth, 'up']);
  for (const h of o.hosts) {
    await run(['ip', 'netns', 'add', h.netns]);
    await run(['ip', '-n', h.netns, 'link', 'set', 'lo', 'up']);
    await run(['ip', 'link', 'add', 'eth0', 'netns', h.netns, 'type', 'veth', 'peer', 'name', h.bridgePort, 'netns', br]);
    await run(['ip', '-n', br, 'link', 'set', h.bridgePort, 'master', 'br0', 'up']);
    await run(['ip', '-n', h.netns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0']);
    await run(['ip', '-n', h.netns, 'link', 'set', 'eth0', 'up']);
  }
}

function sshdConfig(s: TestbedState, node: TestbedNode): string {
  return [
    `# sshd of testbed node ${node.name} (namespace ${node.netns}); written by hack/testbed`,
    `ListenAddress ${node.address}:${node.port}`,
    `HostKey ${join(node.stateDir, 'ssh_host_ed25519_key')}`,
    `PidFile ${join(node.stateDir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(s.dir, 'authorized_keys')}`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    // DEBUG1 logs every userauth request: tests assert that a refused host key never got that far
    'LogLevel DEBUG1',
    'MaxStartups 100:30:200',
    'MaxSessions 10',
    'ClientAliveInterval 15',
    'AllowTcpForwarding yes',
    'AllowStreamLocalForwarding yes',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

/**
 * A node is its own host, so its root shell does not read this machine's start-up files: sshd runs
 * every command through root's login shell, and bash then sources ~/.bashrc (Debian's bash does so
 * for ssh sessions). On a development machine that file may be heavy (`pyenv init` here costs about
 * 100 ms per command) while a cluster node's is not. In the node's mount namespace (`ip netns exec`
 * makes one, slave to the host's, so nothing leaks back) each such file is covered with /dev/null.
 * Arguments: the files, `--`, then the command to exec.
 */
const MASK_AND_EXEC = 'while [ "$1" != -- ]; do mount --bind /dev/null "$1" || exit 1; shift; done; shift; exec "$@"';

function hostShellRcFiles(): string[] {
  // the testbed runs as root and its nodes' sessions log in as root
  return [join(userInfo().homedir, '.bashrc')].filter((f) => existsSync(f));
}

/** Starts the node's sshd inside its namespace and waits until it answers with its banner. */
export async function startSshd(s: TestbedState, name: string): Promise<void> {
  const node = nodeNamed(s, name);
  if (node.sshdPid && pidAlive(node.sshdPid)) return;
  // `ip netns exec` and the mask script exec sshd in place (same PID): the recorded PID is the listener's.
  const child = spawn('ip', ['netns', 'exec', node.netns, 'sh', '-c', MASK_AND_EXEC, 'sh', ...hostShellRcFiles(), '--', SSHD, '-D', '-f', node.sshdConfig, '-E', node.sshdLog], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  node.sshdPid = child.pid ?? 0;
  await saveState(s);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (await sshBanner(node.address, node.port)) return;
    if (!pidAlive(node.sshdPid) || Date.now() > deadline) {
      const log = await readFile(node.sshdLog, 'utf8').catch(() => '');
      throw new TestbedError(`sshd of ${node.name} did not come up on ${node.address}:${node.port}; its log:\n${log.slice(-2000)}`);
    }
    await sleep(50);
  }
}

/** Stops the node's sshd listener and every session it serves (the node looks down). */
export async function stopSshd(s: TestbedState, name: string): Promise<void> {
  const node = nodeNamed(s, name);
  // sessions are children of the listener; they live in the node namespace with it
  const pids = (await tryRun(['ip', 'netns', 'pids', node.netns])).stdout.split(/\s+/).filter(Boolean).map(Number);
  const sshds = pids.filter((p) => /^(sshd|\/usr\/sbin\/sshd)\b/.test(readCmdline(p)[0] ?? ''));
  await killPids([...new Set([node.sshdPid, ...sshds])].filter((p) => p > 0));
  node.sshdPid = 0;
  await saveState(s);
}

function nodeNamed(s: TestbedState, name: string): TestbedNode {
  const node = s.nodes.find((x) => x.name === name);
  if (!node) throw new TestbedError(`no node ${name} in the testbed in ${s.dir} (nodes: ${s.nodes.map((x) => x.name).join(', ')})`);
  return node;
}

function readCmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/** True when an SSH server at host:port sends its banner within timeoutMs. */
export function sshBanner(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.createConnection({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('data', (b: Buffer) => done(b.toString('latin1').startsWith('SSH-2.0')));
    sock.once('error', () => done(false));
  });
}

async function writeOutputs(s: TestbedState, opts: TestbedUpOptions): Promise<void> {
  // a full node offers its vCPUs and what Xen has beside dom0; a namespace node this machine
  const cores = opts.cores ?? s.full?.cpus ?? cpus().length;
  const memoryMiB = opts.memoryMiB ?? (s.full ? s.full.memoryMiB - s.full.dom0MiB : Math.floor(totalmem() / 1048576));
  const objects: PhysicalNode[] = s.nodes.map((node) => ({
    apiVersion: API_VERSION,
    kind: 'PhysicalNode',
    metadata: { name: node.name, labels: { 'virtualinux.org/testbed': s.id } },
    spec: {
      address: node.address,
      ssh: { port: node.port, user: 'root', identityFile: s.identityFile, hostKey: node.hostKey },
      capacity: { cores, memoryMiB },
      maxVMs: opts.maxVMs ?? 8,
      hypervisor: s.full ? 'xen' : 'qemu',
      // a full node mounts the shared directory (virtio-9p) at the same path
      storageRoot: s.sanDir,
      // Namespace nodes share this machine's filesystem: each needs its own hypervisor run
      // directory. A full node has its own (the default).
      ...(s.full ? { sanDevice: SAN_DEVICE } : { runRoot: join(node.stateDir, 'run') }),
      // high availability: hack/testbed's own power-off (drivers/fencing/testbed-agent.ts)
      fencing: { agent: 'testbed', testbedDir: s.dir },
    },
  }));
  await writeFile(join(s.dir, 'physicalnodes.yaml'), objects.map((o) => toYaml(o, { lineWidth: 0 })).join('---\n'));
  const nodesJson = s.nodes.map(({ name, netns, address, port, hostKey }) => ({ name, netns, address, port, hostKey, ...(s.full ? { kind: 'full' } : {}) }));
  await writeFile(join(s.dir, 'nodes.json'), JSON.stringify(nodesJson, null, 2) + '\n');
}

// ---- down ------------------------------------------------------------------------------------

/** SIGTERM, then SIGKILL after 3 s, to each PID; waits until they are gone. */
export async function killPids(pids: number[]): Promise<void> {
  const live = pids.filter((p) => p > 1 && p !== process.pid && pidAlive(p));
  for (const p of live) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 3000;
  while (live.some(pidAlive) && Date.now() < deadline) await sleep(50);
  for (const p of live.filter(pidAlive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const hard = Date.now() + 3000;
  while (live.some(pidAlive) && Date.now() < hard) await sleep(50);
}

/**
 * Removes the testbed in DIR: every process in its namespaces, mounts under DIR, the namespaces
 * (and with them the bridge and veths), the root-side veth and the files it made. Idempotent; works
 * from testbed.json and, after a crash before that was written, from the namespace names.
 */
export async function testbedDown(dirArg: string): Promise<void> {
  requireRoot('down');
  const dir = resolve(dirArg);
  // a torn or corrupt state file must not stop the cleanup: the namespace names suffice
  const state = await readTestbed(dir).catch(() => undefined);
  const prefix = `vl-${testbedId(dir)}-`;
  await withLock(async () => {
    const listed = (await tryRun(['ip', 'netns', 'list'])).stdout
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter((ns) => ns.startsWith(prefix));
    const namespaces = [...new Set([...(state?.nodes.map((x) => x.netns) ?? []), ...(state ? [state.bridgeNetns] : []), ...listed])];
    // 1. processes: recorded sshd PIDs (if still sshd with our config) and everything in our namespaces
    const pids: number[] = [];
    for (const node of state?.nodes ?? []) {
      if (node.sshdPid && readCmdline(node.sshdPid).includes(node.sshdConfig)) pids.push(node.sshdPid);
    }
    if (state) pids.push(...fullNodePids(state)); // full nodes' QEMUs (also in the bridge namespace)
    for (const ns of namespaces) {
      const r = await tryRun(['ip', 'netns', 'pids', ns]);
      if (r.code === 0) pids.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    await killPids([...new Set(pids)]);
    // 2. mounts under DIR, deepest first
    await unmountUnder(dir);
    // 3. namespaces; deleting the bridge namespace deletes the peers of every veth, hence the veths
    for (const ns of namespaces) {
      const r = await tryRun(['ip', 'netns', 'del', ns]);
      if (r.code !== 0 && !/No such file|not found/i.test(r.stderr)) {
        throw new TestbedError(`cannot delete network namespace ${ns}: ${r.stderr.trim()}`);
      }
    }
    const hostVeth = state?.hostVeth ?? `vl${testbedId(dir)}h`;
    await tryRun(['ip', 'link', 'del', hostVeth]);
    // 4. the guard route, when this was the last testbed
    const others = (await tryRun(['ip', 'netns', 'list'])).stdout.split('\n').some((l) => /^vl-[0-9a-f]{6}-br\b/.test(l));
    if (!others) await tryRun(['ip', 'route', 'del', 'unreachable', ROOT_GUARD_ROUTE]);
  });
  // 5. files
  for (const f of ['nodes', 'san', 'san.img', 'id_ed25519', 'id_ed25519.pub', 'authorized_keys', 'physicalnodes.yaml', 'nodes.json']) {
    await rm(join(dir, f), { recursive: true, force: true });
  }
  await rm(statePath(dir), { force: true });
  await rm(statePath(dir) + '.tmp', { force: true });
  await rmdir(dir).catch(() => {}); // only when nothing else is in it
}

async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const points = mountinfo
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => !!p)
    .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    const r = await tryRun(['umount', p]);
    if (r.code !== 0) await run(['umount', '-l', p]);
  }
}
