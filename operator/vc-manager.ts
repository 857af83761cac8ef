#!/usr/bin/env -S node --max-semi-space-size=64
// vc-manager: runs the controllers. Start one on every host (the paper's master-less cluster):
// they elect one leader through the store, the others stand by with warm caches and take over
// within the lease TTL when the leader goes.
//
//   vc-manager [--store URL] [--metrics-addr 127.0.0.1:PORT] [--identity NAME] [--lease-ttl SECONDS]
//              [--controllers a,b] [--load MODULE]... [--log-level debug|info|warn|error]
//              [--ui-addr 127.0.0.1:PORT|off] [--ui-token-file FILE]
//
// HTTP: /metrics (Prometheus text), /healthz (the process answers; 503 once its store failed for
// good, e.g. a damaged embedded store file, after which it exits 1), /readyz (200 once it leads
// with synced caches and running controllers, or stands by with synced caches; else 503).
// The dashboard (dashboard/) listens on --ui-addr: read-only unless --ui-token-file is given.
// SIGTERM/SIGINT: stop the workers, release the lease (a standby takes over at once), exit 0.

import { realpathSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openStore, redact } from '../api/store/open-store.js';
import type { FatalErrorSource } from '../api/store/sqlite-store.js';
import type { Store } from '../api/store/types.js';
import { createLogger, type LogLevel } from '../controllers/log.js';
import { ControllerManager } from '../controllers/manager.js';
import { ManagerMetrics } from '../controllers/metrics.js';
import { buildControllerSpecs, CONTROLLER_FACTORIES, type ControllerFactory } from './registry.js';
import { TransportCache } from '../drivers/transport/transport-for.js';
import { readTokenFile } from '../dashboard/auth.js';
import { startDashboard, type Dashboard } from '../dashboard/server.js';
import { startMemoryGovernor } from './memory-governor.js';

/** The dashboard's default address: loopback only. If it is taken the manager runs without it. */
export const DEFAULT_UI_ADDR = '127.0.0.1:8384';

export const USAGE = `usage: vc-manager [--store URL] [--metrics-addr HOST:PORT] [--identity NAME] [--lease-ttl SECONDS]
                  [--controllers a,b] [--load MODULE]... [--log-level debug|info|warn|error]

  --store URL          etcd://HOST:PORT[,...] or file:PATH (default: $VCCTL_STORE, else the embedded store)
  --metrics-addr A     where /metrics, /healthz and /readyz listen (default 127.0.0.1:8383; port 0 = any)
  --identity NAME      this manager's name in the election and in Events (default HOST-PID)
  --lease-ttl SECONDS  leadership lease; a dead leader is replaced within about this time (default 15)
  --controllers LIST   run only these controllers (names, or a group such as garbage-collector)
  --load MODULE        also run the controllers a module exports as \`controllers\` (ControllerFactory[])
  --ssh-timeout SECONDS   time limit of an SSH connect and of a node probe (default 10; full testbed nodes under TCG need more)
  --orphan-grace SECONDS  how long a domain no VirtualNode wants may run before it is stopped (default 60)
  --migration-timeout SECONDS  a live migration is cancelled after this long (default 120; Xen under TCG needs minutes)
  --node-failure-grace SECONDS  how long a PhysicalNode stays NotReady before it is fenced and its VMs restarted elsewhere (default 30)
  --node-probe-interval SECONDS  between probes of a PhysicalNode; NotReady after 3 failed ones (default 30)
  --lvm-vg NAME        the volume group the lvm storage driver uses (spec.storageDriver: lvm)
  --ui-addr A          where the dashboard listens (default ${DEFAULT_UI_ADDR}: this machine only; off = none)
  --ui-token-file F    allow the dashboard's actions to requests carrying the token in F (first line)
  --memory-target-mib N  a soft RSS target: near it V8 collects garbage sooner instead of growing its heap (default 1024; 0 = off)
`;

export interface ManagerArgs {
  store?: string;
  metricsAddr: string;
  identity: string;
  leaseTtl: number;
  controllers?: string[];
  load: string[];
  logLevel: LogLevel;
  orphanGraceSeconds: number;
  /** --migration-timeout: a live migration's time limit, seconds (the migration controller's default when absent). */
  migrationTimeoutSeconds?: number;
  nodeFailureGraceSeconds: number;
  nodeProbeIntervalSeconds?: number;
  /** SSH connect and node probe time limit; undefined: the transports' and the probe's defaults (10 s). */
  sshTimeoutSeconds?: number;
  lvm?: { vg: string };
  /** undefined: the dashboard is off. */
  uiAddr?: string;
  /** Whether uiAddr was given (a default address that is taken only costs the dashboard). */
  uiAddrExplicit?: boolean;
  uiTokenFile?: string;
  /** --memory-target-mib: the memory governor's soft RSS target (operator/memory-governor.ts); 0: off. */
  memoryTargetMiB: number;
}

export function parseManagerArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ManagerArgs {
  const a: ManagerArgs = {
    store: env.VCCTL_STORE || undefined,
    metricsAddr: '127.0.0.1:8383',
    identity: `${hostname()}-${process.pid}`,
    leaseTtl: 15,
    load: [],
    logLevel: 'info',
    orphanGraceSeconds: 60,
    nodeFailureGraceSeconds: 30,
    uiAddr: DEFAULT_UI_ADDR,
    memoryTargetMiB: 1024,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const eq = arg.indexOf('=');
    const flag = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const value = (): string => {
      if (arg.startsWith('--') && eq > 0) return arg.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case '--store': a.store = value(); break;
      case '--metrics-addr': a.metricsAddr = value(); break;
      case '--identity': a.identity = value(); break;
      case '--ui-addr': {
        const v = value();
        a.uiAddr = v === 'off' ? undefined : v;
        a.uiAddrExplicit = true;
        break;
      }
      case '--ui-token-file': a.uiTokenFile = value(); break;
      case '--lvm-vg': a.lvm = { ...a.lvm, vg: value() }; break;
      case '--lvm-thin-pool': throw new Error('--lvm-thin-pool is no longer used: each lvm snapshot has a thin pool of its own in the volume group (--lvm-vg); drop the flag');
      case '--orphan-grace': {
        const v = value();
        a.orphanGraceSeconds = Number(v);
        if (!Number.isFinite(a.orphanGraceSeconds) || a.orphanGraceSeconds < 0) throw new Error(`--orphan-grace ${v}: give seconds, at least 0`);
        break;
      }
      case '--migration-timeout': {
        const v = value();
        a.migrationTimeoutSeconds = Number(v);
        if (!Number.isInteger(a.migrationTimeoutSeconds) || a.migrationTimeoutSeconds < 1) throw new Error(`--migration-timeout ${v}: give whole seconds, at least 1`);
        break;
      }
      case '--ssh-timeout': {
        const v = value();
        a.sshTimeoutSeconds = Number(v);
        if (!Number.isInteger(a.sshTimeoutSeconds) || a.sshTimeoutSeconds < 1) throw new Error(`--ssh-timeout ${v}: give whole seconds, at least 1`);
        break;
      }
      case '--node-failure-grace': case '--node-probe-interval': {
        const v = value();
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0)) throw new Error(`${flag} ${v}: give seconds, more than 0`);
        if (flag === '--node-failure-grace') a.nodeFailureGraceSeconds = n;
        else a.nodeProbeIntervalSeconds = n;
        break;
      }
      case '--lease-ttl': {
        const v = value();
        a.leaseTtl = Number(v);
        if (!Number.isInteger(a.leaseTtl) || a.leaseTtl < 1) throw new Error(`--lease-ttl ${v}: give whole seconds, at least 1`);
        break;
      }
      case '--memory-target-mib': {
        const v = value();
        a.memoryTargetMiB = Number(v);
        if (!Number.isInteger(a.memoryTargetMiB) || a.memoryTargetMiB < 0) throw new Error(`--memory-target-mib ${v}: give whole MiB (0: off)`);
        break;
      }
      case '--controllers': a.controllers = value().split(',').map((s) => s.trim()).filter(Boolean); break;
      case '--load': a.load.push(value()); break;
      case '--log-level': {
        const v = value();
        if (!['debug', 'info', 'warn', 'error', 'silent'].includes(v)) throw new Error(`--log-level ${v}: use debug, info, warn or error`);
        a.logLevel = v as LogLevel;
        break;
      }
      case '-h': case '--help': throw new HelpRequested();
      default: throw new Error(`unknown argument "${arg}"\n${USAGE}`);
    }
  }
  if (!/^[^:]+:\d+$/.test(a.metricsAddr)) throw new Error(`--metrics-addr ${a.metricsAddr}: use HOST:PORT, e.g. 127.0.0.1:8383`);
  if (a.uiAddr !== undefined && !/^(\[[0-9a-fA-F:]+\]|[^:\[\]]+):\d+$/.test(a.uiAddr)) throw new Error(`--ui-addr ${a.uiAddr}: use HOST:PORT, e.g. 127.0.0.1:8384, or off`);
  if (a.uiTokenFile && a.uiAddr === undefined) throw new Error('--ui-token-file needs the dashboard: drop --ui-addr off');
  return a;
}

class HelpRequested extends Error {}

async function loadFactories(mod: string): Promise<ControllerFactory[]> {
  const m = (await import(pathToFileURL(resolve(mod)).href)) as { controllers?: ControllerFactory[] };
  if (!Array.isArray(m.controllers)) throw new Error(`--load ${mod}: the module must export \`controllers\`, an array of ControllerFactory`);
  return m.controllers;
}

/** `failure` says why the process is no longer healthy (a damaged store), or undefined. */
function serve(addr: string, manager: ControllerManager, metrics: ManagerMetrics, failure: () => string | undefined): Promise<Server> {
  const i = addr.lastIndexOf(':');
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => { res.writeHead(200, { 'content-type': metrics.registry.contentType }); res.end(text); },
        (err: unknown) => { res.writeHead(500); res.end(String(err)); },
      );
    } else if (path === '/healthz') {
      const failed = failure();
      res.writeHead(failed ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(failed ? `not ok: ${failed}\n` : 'ok\n');
    } else if (path === '/readyz') {
      const ready = manager.isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(`${ready ? 'ready' : 'not ready'} (${manager.isLeader() ? 'leader' : 'standby'})\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try /metrics, /healthz or /readyz\n');
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(Number(addr.slice(i + 1)), addr.slice(0, i), () => ok(server));
  });
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: ManagerArgs;
  try {
    args = parseManagerArgs(argv);
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(USAGE);
      return 0;
    }
    process.stderr.write(`vc-manager: ${(err as Error).message}\n`);
    return 2;
  }
  const log = createLogger({ level: args.logLevel, bindings: { identity: args.identity } });
  let uiToken: string | undefined;
  try {
    uiToken = args.uiTokenFile ? readTokenFile(args.uiTokenFile) : undefined;
  } catch (err) {
    process.stderr.write(`vc-manager: ${(err as Error).message}\n`);
    return 2;
  }
  let store: Store;
  try {
    store = await openStore(args.store);
    // A damaged embedded store is refused at start (the whole file is read once), like one that
    // does not open; damage found later stops the manager with a non-zero exit (below).
    if (isFatalErrorSource(store)) {
      try {
        store.checkIntegrity();
      } catch (err) {
        await store.close();
        throw err;
      }
    }
  } catch (err) {
    log.error({ store: args.store ? redact(args.store) : 'default', err: (err as Error).message }, 'cannot open the store');
    return 1;
  }
  const metrics = new ManagerMetrics({ defaultMetrics: true });
  const governor = args.memoryTargetMiB > 0 ? startMemoryGovernor({
    targetBytes: args.memoryTargetMiB * 1024 * 1024,
    onChange: (percent, rss) => {
      metrics.heapGrowingPercent.set(percent);
      log.info({ heapGrowingPercent: percent, rssMiB: Math.round(rss / 2 ** 20), targetMiB: args.memoryTargetMiB }, 'memory governor: heap growth changed');
    },
  }) : undefined;
  // Slow nodes (full testbed nodes under TCG) need longer than 10 s to connect and to be probed;
  // keepalives then tolerate as long a silence.
  const sshTimeoutMs = args.sshTimeoutSeconds === undefined ? undefined : args.sshTimeoutSeconds * 1000;
  const transports = new TransportCache(sshTimeoutMs === undefined ? undefined
    : { ssh: { connectTimeoutMs: sshTimeoutMs, keepaliveIntervalMs: Math.max(10_000, sshTimeoutMs / 3) } });
  let manager: ControllerManager;
  try {
    const factories = [...CONTROLLER_FACTORIES];
    for (const m of args.load) factories.push(...(await loadFactories(m)));
    manager = new ControllerManager({
      store,
      identity: args.identity,
      leaseTtlSeconds: args.leaseTtl,
      log,
      metrics,
      specs: (cache) => buildControllerSpecs({ cache, identity: args.identity, log, transports, orphanGraceMs: args.orphanGraceSeconds * 1000, migrationTimeoutMs: args.migrationTimeoutSeconds === undefined ? undefined : args.migrationTimeoutSeconds * 1000, nodeFailureGraceMs: args.nodeFailureGraceSeconds * 1000, nodeProbeIntervalMs: args.nodeProbeIntervalSeconds === undefined ? undefined : args.nodeProbeIntervalSeconds * 1000, probeTimeoutMs: sshTimeoutMs, storageDrivers: args.lvm ? { lvm: args.lvm } : undefined }, factories, args.controllers),
    });
  } catch (err) {
    log.error({ err: (err as Error).message }, 'cannot set up the controllers');
    await store.close();
    return 2;
  }
  let storeFailure: Error | undefined;
  let shutdown: ((why: Record<string, unknown>, code: number) => void) | undefined;
  if (isFatalErrorSource(store)) {
    store.onFatal((err) => {
      storeFailure = err;
      log.error({ store: args.store ? redact(args.store) : 'default', err: err.message }, 'the store failed for good: exiting');
      shutdown?.({ reason: 'store failed' }, 1);
    });
  }
  let server: Server;
  try {
    server = await serve(args.metricsAddr, manager, metrics, () => storeFailure?.message);
  } catch (err) {
    log.error({ addr: args.metricsAddr, err: (err as Error).message }, 'cannot listen for /metrics; choose another --metrics-addr');
    await store.close();
    return 1;
  }
  let dashboard: Dashboard | undefined;
  if (args.uiAddr !== undefined) {
    try {
      dashboard = await startDashboard({ addr: args.uiAddr, source: manager.cache, storeUrl: args.store, token: uiToken, log });
      log.info({ url: dashboard.url, actions: uiToken !== undefined }, 'dashboard listening');
    } catch (err) {
      if (args.uiAddrExplicit) {
        log.error({ addr: args.uiAddr, err: (err as Error).message }, 'cannot serve the dashboard; choose another --ui-addr');
        server.close();
        await store.close();
        return 1;
      }
      log.warn({ addr: args.uiAddr, err: (err as Error).message }, 'dashboard not served (its default address is taken); give --ui-addr to choose one');
    }
  }
  const bound = server.address();
  log.info({
    store: store.backend, metricsAddr: typeof bound === 'object' && bound ? `${bound.address}:${bound.port}` : args.metricsAddr,
    leaseTtl: args.leaseTtl,
  }, 'vc-manager started');
  return new Promise<number>((done) => {
    let stopping = false;
    const stop = (why: Record<string, unknown>, code: number) => {
      if (stopping) {
        if (why.signal === undefined) return;
        log.warn(why, 'second signal: exiting at once');
        process.exit(1);
      }
      stopping = true;
      log.info(why, 'shutting down: stopping workers and releasing leadership');
      void (async () => {
        try {
          await manager.stop();
          governor?.stop();
          await transports.closeAll();
          await dashboard?.close();
          server.close();
          await store.close();
          log.info({}, 'stopped');
          done(code);
        } catch (err) {
          log.error({ err: String(err) }, 'unclean shutdown');
          done(1);
        }
      })();
    };
    shutdown = stop;
    process.on('SIGTERM', () => stop({ signal: 'SIGTERM' }, 0));
    process.on('SIGINT', () => stop({ signal: 'SIGINT' }, 0));
    if (storeFailure) {
      stop({ reason: 'store failed' }, 1);
      return;
    }
    manager.start().catch((err: unknown) => {
      log.error({ err: String(err) }, 'cannot start the controllers');
      stop({ reason: 'start failed' }, 1);
    });
  });
}

function isFatalErrorSource(store: Store): store is Store & FatalErrorSource {
  return typeof (store as Partial<FatalErrorSource>).onFatal === 'function';
}

// Run when executed (node dist/operator/vc-manager.js, the npm bin symlink, or tsx), not when imported.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(resolve(process.argv[1]))).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`vc-manager: ${String(err)}\n`);
    process.exit(1);
  });
}
