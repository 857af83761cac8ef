// The controllers vc-manager runs. Each area adds one line to CONTROLLER_FACTORIES: a factory that
// gets the manager's environment and returns its ControllerSpec(s). `vc-manager --controllers a,b`
// runs a subset, matched by spec name or by the group before a "/" (`garbage-collector` selects
// every `garbage-collector/<kind>`).

import type { SharedCache } from '../controllers/cache.js';
import { garbageCollectorSpecs } from '../controllers/gc/garbage-collector.js';
import type { ControllerSpec, Logger } from '../controllers/types.js';
import { virtualClusterController } from '../reconcilers/virtualcluster/controller.js';
import { placementControllers } from '../reconcilers/placement/controller.js';
import type { TransportCache } from '../drivers/transport/transport-for.js';
import { networkControllers } from '../reconcilers/network/controller.js';
import { nodeController } from '../reconcilers/nodes/controller.js';
import { haController } from '../reconcilers/ha/controller.js';
import { staleDomainStopper } from '../reconcilers/ha/stale-domains.js';
import { RUNTIME_FINALIZER, runtimeControllers } from '../reconcilers/runtime/controller.js';
import { storageController } from '../reconcilers/storage/controller.js';
import { storageActivation } from '../reconcilers/storage/activation.js';
import { gitOpsController, gitopsCacheRoot } from '../reconcilers/gitops/controller.js';
import type { DriverOptions } from '../drivers/storage/index.js';

export interface ControllerEnv {
  /** The manager's shared cache (CacheReader plus owner lookups). */
  cache: SharedCache;
  /** This manager's identity (host name by default). */
  identity: string;
  log: Logger;
  /** One transport (SSH connection pool) per PhysicalNode, shared by every controller. */
  transports: TransportCache;
  /** How long a domain no VirtualNode wants may run before it is stopped; default 60 s. */
  orphanGraceMs?: number;
  /** A live migration's time limit; default 120 s (the migration controller's). */
  migrationTimeoutMs?: number;
  /** One node probe's time limit; default 10 s (the nodes controller's). */
  probeTimeoutMs?: number;
  /** Settings of the storage drivers that need them (the lvm volume group). */
  storageDrivers?: DriverOptions;
  /** High availability: how long a node stays NotReady before it is fenced; default 30 s. */
  nodeFailureGraceMs?: number;
  /** Between probes of one physical node; default 30 s (Ready turns False after 3 failed probes). */
  nodeProbeIntervalMs?: number;
  /**
   * Whether this manager runs the controller named `name` (`--controllers`; every one when
   * omitted): for a controller that does part of another's work when that one runs (placement
   * sets the runtime's finalizer in its binding write).
   */
  runs?: (name: string) => boolean;
}

export type ControllerFactory = (env: ControllerEnv) => ControllerSpec | ControllerSpec[];

export const CONTROLLER_FACTORIES: ControllerFactory[] = [
  (env) => garbageCollectorSpecs(env.cache),
  () => virtualClusterController(),
  (env) => placementControllers(env.cache, { bindFinalizers: env.runs?.('runtime') === false ? [] : [RUNTIME_FINALIZER] }),
  (env) => networkControllers(env.cache, { transports: env.transports }),
  (env) => storageController(env.cache, { transports: env.transports, driverOptions: env.storageDrivers }),
  (env) => runtimeControllers(env.cache, { transports: env.transports, orphanGraceMs: env.orphanGraceMs, timeoutMs: env.migrationTimeoutMs, volumes: storageActivation(env.transports, env.storageDrivers) }),
  (env) => nodeController({ transports: env.transports, probeTimeoutMs: env.probeTimeoutMs, intervalMs: env.nodeProbeIntervalMs, beforeReady: staleDomainStopper(env.transports) }),
  (env) => haController({ graceMs: env.nodeFailureGraceMs }),
  (env) => gitOpsController({ cacheRoot: gitopsCacheRoot(process.env, env.identity) }),
];

/** Whether `--controllers` entry `sel` selects the controller named `name`. */
export function selectsController(sel: string, name: string): boolean {
  return sel === name || name.startsWith(`${sel}/`);
}

/** Builds the specs of every factory, keeping those `only` selects (all when omitted). */
export function buildControllerSpecs(
  env: ControllerEnv,
  factories: readonly ControllerFactory[] = CONTROLLER_FACTORIES,
  only?: readonly string[],
): ControllerSpec[] {
  const selected = only && only.length > 0 ? only : undefined;
  const all = factories.flatMap((f) => f({ ...env, runs: (name) => !selected || selected.some((s) => selectsController(s, name)) }));
  if (!selected) return all;
  const unknown = selected.filter((s) => !all.some((c) => selectsController(s, c.name)));
  if (unknown.length > 0) {
    throw new Error(`--controllers: unknown ${unknown.join(', ')}; known: ${all.map((c) => c.name).join(', ')}`);
  }
  return all.filter((c) => selected.some((s) => selectsController(s, c.name)));
}
