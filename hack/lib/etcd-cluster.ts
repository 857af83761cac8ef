// hack/etcd-cluster: a real multi-member etcd cluster on this machine for fault tests, benchmarks
// and `hack/demo --etcd`. Each member runs in its own network namespace (so a test can cut it off),
// peers and clients speak TLS with certificates made here (openssl), clients must show a client
// certificate (--client-cert-auth) and etcd's own auth is on (user root, role root; the client
// certificate's CN "root" authenticates as that user; the password is in DIR/root-password).
//
// Layout of DIR:
//   etcd-cluster.json   what `up` created (written BEFORE each step, so `down` works after a crash)
//   certs/              ca.pem, <member>.pem/-key.pem (server and peer), client.pem/-key.pem (CN root)
//   root-password       the etcd root user's password (mode 0600)
//   store-url           the VCCTL_STORE URL: every endpoint, and cacert/cert/key as file paths
//   members/<name>/     data/ (etcd's data directory) and etcd.log
//
// Network: namespaces `ve-<id>-<member>` joined by a bridge in `ve-<id>-br` (id: a hash of DIR),
// one /24 per cluster taken from the top of 198.19.0.0/16 downward (198.19.255, 198.19.254, ...)
// under the testbed's machine-wide lock, skipping any /24 in use, so testbeds (which take free /24s
// of 198.18.0.0/15 under the same lock) and clusters never share one. Members are .11, .12, ...;
// the root namespace gets .1 on a veth into the bridge. No namespace has a default route, and the
// `unreachable 198.18.0.0/15` guard route is kept while any testbed or cluster is up.
//
// Faults: stop (SIGKILL by recorded PID: a crash), start (the same member on its data directory),
// pause/resume (SIGSTOP/SIGCONT: a hung process), partition/heal (the member's bridge port down/up:
// it reaches neither its peers nor any client outside its namespace, and they do not reach it).

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Etcd3 } from 'etcd3';
import { LocalTransport } from '../../drivers/transport/local-transport.js';
import { execOk, type ExecResult } from '../../drivers/transport/types.js';
import { createStarNetwork, killPids, pidAlive, usedSubnets, withLock } from './testbed.js';

export const ETCD_BIN = process.env.ETCD_BIN ?? '/usr/bin/etcd';
const GUARD_ROUTE = '198.18.0.0/15';
const CLIENT_PORT = 2379;
const PEER_PORT = 2380;

export interface EtcdMember {
  name: string;
  netns: string;
  address: string;
  /** https://ADDRESS:2379 */
  clientUrl: string;
  peerUrl: string;
  /** The member's port on the bridge (down while partitioned). */
  bridgePort: string;
  dataDir: string;
  logFile: string;
  /** The etcd process's PID, 0 while stopped. */
  pid: number;
  partitioned: boolean;
  paused: boolean;
}

export interface EtcdClusterState {
  version: 1;
  dir: string;
  id: string;
  /** "198.19.K" */
  subnet: string;
  bridgeNetns: string;
  hostVeth: string;
  hostAddress: string;
  certs: { ca: string; caKey: string; clientCert: string; clientKey: string };
  passwordFile: string;
  storeUrlFile: string;
  members: EtcdMember[];
}

export interface EtcdClusterUpOptions {
  dir: string;
  /** Number of members, 1 to 7; default 3. */
  members?: number;
  /** Most operations per txn; benchmarks apply large batches. Default 10000. */
  maxTxnOps?: number;
  log?: (line: string) => void;
}

export type MemberRole = 'leader' | 'follower' | 'down';

export class EtcdClusterError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EtcdClusterError';
  }
}

const local = new LocalTransport({ host: 'etcd-cluster' });
const run = (argv: string[]): Promise<string> => execOk(local, argv, { timeoutMs: 30_000 });
const tryRun = (argv: string[]): Promise<ExecResult> => local.exec(argv, { timeoutMs: 30_000 });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new EtcdClusterError(`etcd-cluster ${what} needs root (it creates network namespaces); run it as root`);
  }
}

/** 6 hex digits of a hash of the absolute path: names of namespaces and links. */
export function clusterId(dir: string): string {
  return createHash('sha256').update(`etcd-cluster:${resolve(dir)}`).digest('hex').slice(0, 6);
}

const statePath = (dir: string): string => join(dir, 'etcd-cluster.json');

async function saveState(s: EtcdClusterState): Promise<void> {
  await writeFile(statePath(s.dir) + '.tmp', JSON.stringify(s, null, 2) + '\n');
  await rename(statePath(s.dir) + '.tmp', statePath(s.dir));
}

/** The cluster in DIR; throws a message naming DIR when none is up. */
export async function readEtcdCluster(dirArg: string): Promise<EtcdClusterState> {
  const dir = resolve(dirArg);
  try {
    return JSON.parse(await readFile(statePath(dir), 'utf8')) as EtcdClusterState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new EtcdClusterError(`no etcd cluster is up in ${dir} (no ${statePath(dir)})`);
    throw new EtcdClusterError(`cannot read ${statePath(dir)}: ${(e as Error).message}`, { cause: e });
  }
}

function memberNamed(s: EtcdClusterState, name: string): EtcdMember {
  const m = s.members.find((x) => x.name === name);
  if (!m) throw new EtcdClusterError(`no member ${JSON.stringify(name)} in the cluster in ${s.dir} (members: ${s.members.map((x) => x.name).join(', ')})`);
  return m;
}

/** The store URL: every client endpoint, TLS files by path; no password (cert auth). */
export function storeUrlOf(s: EtcdClusterState): string {
  const hosts = s.members.map((m) => `${m.address}:${CLIENT_PORT}`).join(',');
  const q = new URLSearchParams({ cacert: s.certs.ca, cert: s.certs.clientCert, key: s.certs.clientKey });
  return `etcd://${hosts}?${q.toString().replace(/%2F/g, '/')}`;
}

// ---- up ----------------------------------------------------------------------------------------

export async function etcdClusterUp(opts: EtcdClusterUpOptions): Promise<EtcdClusterState> {
  requireRoot('up');
  const n = opts.members ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 7) throw new EtcdClusterError(`--members must be an integer from 1 to 7, got ${n}`);
  if (!existsSync(ETCD_BIN)) throw new EtcdClusterError(`${ETCD_BIN} not found: install etcd-server (hack/setup does)`);
  const log = opts.log ?? (() => {});
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  if (existsSync(statePath(dir))) throw new EtcdClusterError(`an etcd cluster is already up in ${dir}; run \`hack/etcd-cluster down --dir ${dir}\` first`);
  const id = clusterId(dir);
  let state: EtcdClusterState | undefined;
  try {
    await withLock(async () => {
      const used = await usedSubnets();
      let subnet: string | undefined;
      for (let k = 255; k >= 0 && !subnet; k--) if (!used.has(`198.19.${k}`)) subnet = `198.19.${k}`;
      if (!subnet) throw new EtcdClusterError('no free /24 left in 198.19.0.0/16 for another etcd cluster');
      const certDir = join(dir, 'certs');
      state = {
        version: 1, dir, id, subnet,
        bridgeNetns: `ve-${id}-br`, hostVeth: `ve${id}h`, hostAddress: `${subnet}.1`,
        certs: { ca: join(certDir, 'ca.pem'), caKey: join(certDir, 'ca-key.pem'), clientCert: join(certDir, 'client.pem'), clientKey: join(certDir, 'client-key.pem') },
        passwordFile: join(dir, 'root-password'),
        storeUrlFile: join(dir, 'store-url'),
        members: Array.from({ length: n }, (_, i) => {
          const name = `etcd${i + 1}`;
          const address = `${subnet}.${11 + i}`;
          return {
            name, netns: `ve-${id}-${name}`, address,
            clientUrl: `https://${address}:${CLIENT_PORT}`, peerUrl: `https://${address}:${PEER_PORT}`,
            bridgePort: `p${i + 1}`,
            dataDir: join(dir, 'members', name, 'data'), logFile: join(dir, 'members', name, 'etcd.log'),
            pid: 0, partitioned: false, paused: false,
          };
        }),
      };
      await saveState(state); // intent first: `down` can undo a half-made cluster
      await createNetwork(state);
    });
    const s = state!;
    log(`etcd cluster ${id}: ${n} members in ${s.subnet}.0/24, TLS and client certificates (${join(dir, 'certs')})`);
    await makeCertificates(s);
    for (const m of s.members) await mkdir(join(dir, 'members', m.name), { recursive: true });
    for (const m of s.members) await spawnMember(s, m, opts.maxTxnOps ?? 10_000);
    await saveState(s);
    await waitHealthy(s, 60_000);
    await enableAuth(s);
    await writeFile(s.storeUrlFile, storeUrlOf(s) + '\n');
    log(`etcd cluster ready: ${s.members.map((m) => m.clientUrl).join(' ')}; store URL in ${s.storeUrlFile}`);
    return s;
  } catch (e) {
    await etcdClusterDown(dir).catch(() => {});
    throw e;
  }
}

async function createNetwork(s: EtcdClusterState): Promise<void> {
  await createStarNetwork({
    bridgeNetns: s.bridgeNetns, hostVeth: s.hostVeth, hostAddress: s.hostAddress,
    hosts: s.members.map((m) => ({ netns: m.netns, address: m.address, bridgePort: m.bridgePort })),
  });
}

async function makeCertificates(s: EtcdClusterState): Promise<void> {
  const dir = join(s.dir, 'certs');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(['openssl', 'req', '-x509', ...ec, '-keyout', s.certs.caKey, '-out', s.certs.ca, '-days', '30', '-subj', `/CN=virtualinux etcd CA ${s.id}`]);
  const sign = async (name: string, cn: string, ext: string, cert: string, key: string): Promise<void> => {
    const csr = join(dir, `${name}.csr`);
    const extFile = join(dir, `${name}.ext`);
    await writeFile(extFile, ext);
    await run(['openssl', 'req', ...ec, '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
    await run(['openssl', 'x509', '-req', '-in', csr, '-CA', s.certs.ca, '-CAkey', s.certs.caKey, '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', extFile]);
    await rm(csr, { force: true });
    await rm(extFile, { force: true });
  };
  for (const m of s.members) {
    await sign(m.name, m.name, [
      `subjectAltName=IP:${m.address},IP:127.0.0.1`,
      'extendedKeyUsage=serverAuth,clientAuth',
      'keyUsage=digitalSignature,keyEncipherment',
      '',
    ].join('\n'), join(dir, `${m.name}.pem`), join(dir, `${m.name}-key.pem`));
  }
  // etcd maps the client certificate's CN to its user when auth is on: this one is root.
  await sign('client', 'root', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n', s.certs.clientCert, s.certs.clientKey);
}

function memberArgs(s: EtcdClusterState, m: EtcdMember, maxTxnOps: number): string[] {
  const certs = join(s.dir, 'certs');
  return [
    '--name', m.name,
    '--data-dir', m.dataDir,
    '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
    '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
    '--initial-cluster', s.members.map((x) => `${x.name}=${x.peerUrl}`).join(','),
    '--initial-cluster-token', `ve-${s.id}`, '--initial-cluster-state', 'new',
    '--cert-file', join(certs, `${m.name}.pem`), '--key-file', join(certs, `${m.name}-key.pem`),
    '--trusted-ca-file', s.certs.ca, '--client-cert-auth',
    '--peer-cert-file', join(certs, `${m.name}.pem`), '--peer-key-file', join(certs, `${m.name}-key.pem`),
    '--peer-trusted-ca-file', s.certs.ca, '--peer-client-cert-auth',
    '--max-txn-ops', String(maxTxnOps),
    '--max-request-bytes', String(32 * 1024 * 1024),
    '--quota-backend-bytes', String(4 * 1024 * 1024 * 1024),
    // Raft's pre-vote (etcd 3.5's default, off in Debian's 3.4): a member that was cut off asks
    // before it starts an election, so its return does not depose a healthy leader and stall the
    // cluster for an election (which outlasted a vc-manager's renewal deadline once in CI).
    '--pre-vote',
    '--logger', 'zap', '--log-level', 'warn',
  ];
}

/** Starts the member's etcd in its namespace; `ip netns exec` execs etcd in place (same PID). */
async function spawnMember(s: EtcdClusterState, m: EtcdMember, maxTxnOps = 10_000): Promise<void> {
  const fd = openSync(m.logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', m.netns, ETCD_BIN, ...memberArgs(s, m, maxTxnOps)], { detached: true, stdio: ['ignore', fd, fd] });
    child.unref();
    m.pid = child.pid ?? 0;
    m.paused = false;
  } finally {
    closeSync(fd);
  }
}

function clientFor(s: EtcdClusterState, members: EtcdMember[], timeoutMs = 2000): Etcd3 {
  return new Etcd3({
    hosts: members.map((m) => m.clientUrl),
    dialTimeout: timeoutMs,
    credentials: {
      rootCertificate: readFileSync(s.certs.ca),
      certChain: readFileSync(s.certs.clientCert),
      privateKey: readFileSync(s.certs.clientKey),
    },
    defaultCallOptions: () => ({ deadline: Date.now() + timeoutMs }),
    faultHandling: { global: { execute: (fn: () => Promise<unknown>) => fn() } as never },
  });
}

/** Each member's role as seen from here: a member that does not answer (stopped, paused, cut off) is down. */
export async function memberRoles(s: EtcdClusterState, timeoutMs = 1500): Promise<{ name: string; endpoint: string; role: MemberRole }[]> {
  return Promise.all(s.members.map(async (m) => {
    let role: MemberRole = 'down';
    if (m.pid && pidAlive(m.pid) && !m.paused && !m.partitioned) {
      const c = clientFor(s, [m], timeoutMs);
      try {
        const st = await c.maintenance.status();
        role = st.leader === '0' ? 'down' : st.leader === st.header.member_id ? 'leader' : 'follower';
      } catch {
        role = 'down';
      } finally {
        c.close();
      }
    }
    return { name: m.name, endpoint: m.clientUrl, role };
  }));
}

/** Waits until every running, connected member answers and one of them leads. */
export async function waitHealthy(s: EtcdClusterState, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const expected = s.members.filter((m) => m.pid && !m.paused && !m.partitioned).length;
  for (;;) {
    const roles = await memberRoles(s);
    const up = roles.filter((r) => r.role !== 'down');
    if (up.length === expected && up.filter((r) => r.role === 'leader').length === 1) return;
    for (const m of s.members) {
      if (m.pid && !pidAlive(m.pid)) {
        throw new EtcdClusterError(`etcd member ${m.name} exited; its log (${m.logFile}):\n${readFileSync(m.logFile, 'utf8').slice(-2000)}`);
      }
    }
    if (Date.now() > deadline) throw new EtcdClusterError(`the etcd cluster in ${s.dir} is not healthy after ${timeoutMs} ms: ${roles.map((r) => `${r.name} ${r.role}`).join(', ')}`);
    await sleep(200);
  }
}

/** User root with role root (password in DIR/root-password), then auth on. */
async function enableAuth(s: EtcdClusterState): Promise<void> {
  const password = randomBytes(18).toString('base64url');
  await writeFile(s.passwordFile, password + '\n', { mode: 0o600 });
  const c = clientFor(s, s.members, 10_000);
  try {
    await c.role('root').create();
    await c.user('root').create(password);
    await c.user('root').addRole('root');
    await c.auth.authEnable();
  } finally {
    c.close();
  }
}

// ---- faults ------------------------------------------------------------------------------------

/** Kills the member (SIGKILL by default: a crash) by its recorded PID and waits until it is gone. */
export async function stopMember(dir: string, name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const s = await readEtcdCluster(dir);
  const m = memberNamed(s, name);
  if (m.pid && isOurEtcd(m)) {
    if (m.paused) process.kill(m.pid, 'SIGCONT');
    process.kill(m.pid, signal);
    const deadline = Date.now() + 10_000;
    while (pidAlive(m.pid) && Date.now() < deadline) await sleep(20);
    if (pidAlive(m.pid)) await killPids([m.pid]);
  }
  m.pid = 0;
  m.paused = false;
  await saveState(s);
}

/**
 * Starts a stopped member on its data directory and (with `wait`, unless it is cut off) waits
 * until it answers with a leader known: when every member was down, start them all without
 * waiting, then waitHealthy.
 */
export async function startMember(dir: string, name: string, wait = true): Promise<void> {
  const s = await readEtcdCluster(dir);
  const m = memberNamed(s, name);
  if (m.pid && pidAlive(m.pid)) return;
  await spawnMember(s, m);
  await saveState(s);
  if (m.partitioned || !wait) return;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = (await memberRoles(s)).find((x) => x.name === name)!;
    if (r.role !== 'down') return;
    if (!pidAlive(m.pid)) throw new EtcdClusterError(`etcd member ${name} exited on start; see ${m.logFile}`);
    if (Date.now() > deadline) throw new EtcdClusterError(`etcd member ${name} did not answer within 30 s of its start; see ${m.logFile}`);
    await sleep(100);
  }
}

/** SIGSTOP (pause) or SIGCONT (resume): a member that accepts connections and never answers. */
export async function pauseMember(dir: string, name: string, paused: boolean): Promise<void> {
  const s = await readEtcdCluster(dir);
  const m = memberNamed(s, name);
  if (!m.pid || !pidAlive(m.pid)) throw new EtcdClusterError(`etcd member ${name} is not running`);
  process.kill(m.pid, paused ? 'SIGSTOP' : 'SIGCONT');
  m.paused = paused;
  await saveState(s);
}

/** Cuts the member off (its bridge port down) or joins it again. */
export async function partitionMember(dir: string, name: string, cut: boolean): Promise<void> {
  const s = await readEtcdCluster(dir);
  const m = memberNamed(s, name);
  await run(['ip', '-n', s.bridgeNetns, 'link', 'set', m.bridgePort, cut ? 'down' : 'up']);
  m.partitioned = cut;
  await saveState(s);
}

/** argv that runs `argv` inside the member's namespace (e.g. a vc-manager cut off with it). */
export function inMemberNetns(s: EtcdClusterState, name: string, argv: string[]): string[] {
  return ['ip', 'netns', 'exec', memberNamed(s, name).netns, ...argv];
}

function isOurEtcd(m: EtcdMember): boolean {
  try {
    return readFileSync(`/proc/${m.pid}/cmdline`, 'utf8').split('\0').includes(m.dataDir);
  } catch {
    return false;
  }
}

// ---- down --------------------------------------------------------------------------------------

/**
 * Removes the cluster in DIR: its etcd processes (by recorded PID, and whatever else runs in its
 * namespaces), the namespaces (and with them the bridge and veths), the root-side veth and the
 * files it made. Idempotent; works from the state file and, without it, from the namespace names.
 */
export async function etcdClusterDown(dirArg: string): Promise<void> {
  requireRoot('down');
  const dir = resolve(dirArg);
  const state = await readEtcdCluster(dir).catch(() => undefined);
  const prefix = `ve-${clusterId(dir)}-`;
  await withLock(async () => {
    const listed = (await tryRun(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((ns) => ns.startsWith(prefix));
    const namespaces = [...new Set([...(state?.members.map((m) => m.netns) ?? []), ...(state ? [state.bridgeNetns] : []), ...listed])];
    const pids: number[] = [];
    for (const m of state?.members ?? []) {
      if (m.pid && isOurEtcd(m)) {
        pids.push(m.pid);
        try { process.kill(m.pid, 'SIGCONT'); } catch { /* gone */ }
      }
    }
    for (const ns of namespaces) {
      const r = await tryRun(['ip', 'netns', 'pids', ns]);
      if (r.code === 0) pids.push(...r.stdout.split(/\s+/).filter(Boolean).map(Number));
    }
    await killPids([...new Set(pids)]);
    for (const ns of namespaces) {
      const r = await tryRun(['ip', 'netns', 'del', ns]);
      if (r.code !== 0 && !/No such file|not found/i.test(r.stderr)) throw new EtcdClusterError(`cannot delete network namespace ${ns}: ${r.stderr.trim()}`);
    }
    await tryRun(['ip', 'link', 'del', state?.hostVeth ?? `ve${clusterId(dir)}h`]);
    const others = (await tryRun(['ip', 'netns', 'list'])).stdout.split('\n').some((l) => /^v[le]-[0-9a-f]{6}-br\b/.test(l));
    if (!others) await tryRun(['ip', 'route', 'del', 'unreachable', GUARD_ROUTE]);
  });
  for (const f of ['members', 'certs', 'root-password', 'store-url']) await rm(join(dir, f), { recursive: true, force: true });
  await rm(statePath(dir), { force: true });
  await rm(statePath(dir) + '.tmp', { force: true });
  await rmdir(dir).catch(() => {});
}
