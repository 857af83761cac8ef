// startEtcd: a real, throw-away etcd for tests and benchmarks. It runs /usr/bin/etcd (or $ETCD_BIN)
// on free 127.0.0.1 ports in a fresh temporary directory, waits until it answers, and stop() ends
// exactly that process (by its PID) and removes the directory.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';

export interface EtcdHarness {
  /** http://127.0.0.1:PORT of the client listener. */
  endpoints: string[];
  /** The store URL for openStore / --store: etcd://127.0.0.1:PORT (TLS options not included). */
  url: string;
  dataDir: string;
  pid: number;
  /** A client of this etcd (with the harness's TLS credentials), for test set-up such as users. */
  admin: Etcd3;
  /** Compacts etcd's history before `revision` (physically), as an operator's compaction would. */
  compact(revision: number): Promise<void>;
  /** Kills the etcd process (SIGTERM, then SIGKILL after 5 s) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** The etcd binary. Default $ETCD_BIN or /usr/bin/etcd. */
  bin?: string;
  /** Most operations per txn (etcd's default is 128); benchmarks raise it for large batches. */
  maxTxnOps?: number;
  /** Largest request in bytes (etcd's default is 1.5 MiB). */
  maxRequestBytes?: number;
  /** How long to wait for etcd to answer. Default 20 s. */
  startTimeoutMs?: number;
  /**
   * Serve clients over TLS with these PEM files. With clientCert/clientKey, etcd also requires
   * client certificates signed by ca (--client-cert-auth), and the harness uses that pair itself.
   */
  tls?: { ca: string; serverCert: string; serverKey: string; clientCert?: string; clientKey?: string };
}

/** A free TCP port on 127.0.0.1 (the kernel picks it; the socket is closed before etcd binds it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdHarness> {
  const bin = options.bin ?? process.env.ETCD_BIN ?? '/usr/bin/etcd';
  const dataDir = mkdtempSync(join(tmpdir(), 'vl-etcd-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const tls = options.tls;
  const client = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name', 'test',
    '--data-dir', join(dataDir, 'data'),
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `test=${peer}`, '--initial-cluster-state', 'new',
    '--max-txn-ops', String(options.maxTxnOps ?? 10_000),
    '--max-request-bytes', String(options.maxRequestBytes ?? 32 * 1024 * 1024),
    '--quota-backend-bytes', String(4 * 1024 * 1024 * 1024),
    '--log-level', 'error',
    ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--trusted-ca-file', tls.ca] : []),
    ...(tls?.clientCert ? ['--client-cert-auth'] : []),
  ];
  const credentials = tls
    ? {
        rootCertificate: readFileSync(tls.ca),
        ...(tls.clientCert && tls.clientKey ? { certChain: readFileSync(tls.clientCert), privateKey: readFileSync(tls.clientKey) } : {}),
      }
    : undefined;
  let output = '';
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env.ETCD_UNSUPPORTED_ARCH ?? '' } });
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw new Error(`cannot start ${bin}: ${(err as Error).message}; install etcd-server (hack/setup)`, { cause: err });
  }
  const keep = (b: Buffer): void => { output = (output + b.toString()).slice(-4000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited = false;
  const exitedP = new Promise<void>((resolve) => child.on('exit', () => { exited = true; resolve(); }));
  let spawnError: Error | undefined;
  child.on('error', (err) => { spawnError = err; });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited && child.pid !== undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 5000);
      await exitedP;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  // Wait for the port with plain TCP first: a grpc client that connects too early backs off for
  // seconds before its next attempt.
  let probe: Etcd3 | undefined;
  try {
    for (;;) {
      if (spawnError || exited) {
        throw new Error(`etcd (${bin}) exited before it was ready: ${spawnError?.message ?? output.trim()}`);
      }
      if (await portOpen(clientPort)) {
        probe = new Etcd3({ hosts: [client], dialTimeout: 1000, ...(credentials ? { credentials } : {}) });
        try {
          await probe.maintenance.status({ deadline: Date.now() + 1000 });
          break;
        } catch (err) {
          probe.close();
          probe = undefined;
          if (Date.now() > deadline) throw new Error(`etcd did not answer on ${client} within the start timeout: ${output.trim()}`, { cause: err });
        }
      } else if (Date.now() > deadline) {
        throw new Error(`etcd did not listen on ${client} within the start timeout: ${output.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    probe?.close();
    await stop();
    throw err;
  }
  const admin = probe;

  return {
    endpoints: [client],
    url: `etcd://127.0.0.1:${clientPort}`,
    dataDir,
    pid: child.pid!,
    admin,
    compact: async (revision) => { await admin.kv.compact({ revision, physical: true }); },
    stop: async () => { admin.close(); await stop(); },
  };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => { sock.destroy(); resolve(false); });
  });
}
