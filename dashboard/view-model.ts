// What the dashboard shows of each kind: a projection of the stored objects to the fields the page
// renders (no SSH settings, no last-applied copies). Pure; the browser receives only these.

import { LAST_APPLIED_ANNOTATION } from '../api/apply/plan-apply.js';
import type {
  ApiObject, Condition, EventObject, Migration, PhysicalNode, VirtualCluster, VirtualNode, Volume,
} from '../api/types.js';

/** The kinds the page shows, in the order a snapshot lists them. */
export const DASHBOARD_KINDS = ['PhysicalNode', 'VirtualCluster', 'VirtualNode', 'Volume', 'Migration', 'Event'] as const;
export type DashboardKind = (typeof DASHBOARD_KINDS)[number];

/** The newest Events a snapshot carries (the page keeps as many). */
export const EVENTS_IN_SNAPSHOT = 50;

export interface ViewObject {
  kind: DashboardKind;
  name: string;
  namespace?: string;
  /** Set while the object is being deleted. */
  deleting?: boolean;
  [field: string]: unknown;
}

const conds = (c: Condition[] | undefined) =>
  (c ?? []).map(({ type, status, reason, message }) => ({ type, status, reason, message }));

function base(kind: DashboardKind, o: ApiObject): ViewObject {
  const v: ViewObject = { kind, name: o.metadata.name };
  if (o.metadata.namespace) v.namespace = o.metadata.namespace;
  if (o.metadata.deletionTimestamp) v.deleting = true;
  return v;
}

export function viewOf(kind: DashboardKind, o: ApiObject): ViewObject {
  const v = base(kind, o);
  switch (kind) {
    case 'PhysicalNode': {
      const pn = o as PhysicalNode;
      const ready = pn.status?.conditions?.find((c) => c.type === 'Ready');
      return {
        ...v, capacity: pn.spec?.capacity, maxVMs: pn.spec?.maxVMs, unschedulable: pn.spec?.unschedulable === true,
        hypervisor: pn.spec?.hypervisor, allocated: pn.status?.allocated,
        ready: ready ? { status: ready.status, reason: ready.reason, message: ready.message } : undefined,
      };
    }
    case 'VirtualCluster': {
      const vc = o as VirtualCluster;
      const annotations = { ...vc.metadata.annotations };
      delete annotations[LAST_APPLIED_ANNOTATION];
      return {
        ...v, annotations, nodes: vc.spec?.nodes, state: vc.spec?.state, phase: vc.status?.phase,
        strategy: vc.spec?.placement.strategy, mode: vc.spec?.placement.mode, appliedPlacement: vc.status?.placement,
        subnet: vc.status?.subnet ?? vc.spec?.network?.subnet, sharedStorage: vc.spec?.sharedStorage?.filesystem,
        storageDriver: vc.spec?.storageDriver, conditions: conds(vc.status?.conditions),
      };
    }
    case 'VirtualNode': {
      const vn = o as VirtualNode;
      return {
        ...v, cluster: vn.spec?.cluster, index: vn.spec?.index, physicalNode: vn.spec?.physicalNode, host: vn.status?.host,
        phase: vn.status?.phase, ip: vn.status?.ip, vcpus: vn.spec?.vcpus, memoryMiB: vn.spec?.memoryMiB, message: vn.status?.message,
      };
    }
    case 'Volume': {
      const vol = o as Volume;
      return {
        ...v, cluster: vol.spec?.cluster, role: vol.spec?.role, sizeGiB: vol.spec?.sizeGiB, virtualNode: vol.spec?.virtualNode,
        driver: vol.spec?.driver, phase: vol.status?.phase, bytesUsed: vol.status?.bytesUsed,
      };
    }
    case 'Migration': {
      const m = o as Migration;
      return {
        ...v, virtualNode: m.spec?.virtualNode, targetNode: m.spec?.targetNode, sourceNode: m.status?.sourceNode,
        phase: m.status?.phase ?? 'Pending', message: m.status?.message, downtimeMs: m.status?.downtimeMs, totalMs: m.status?.totalMs,
        startTime: m.status?.startTime, completionTime: m.status?.completionTime, progress: m.status?.progress,
      };
    }
    case 'Event': {
      const e = o as EventObject;
      return {
        ...v, type: e.spec?.type, reason: e.spec?.reason, message: e.spec?.message, count: e.spec?.count,
        lastTimestamp: e.spec?.lastTimestamp, involved: e.spec?.involvedObject
          ? { kind: e.spec.involvedObject.kind, name: e.spec.involvedObject.name, namespace: e.spec.involvedObject.namespace }
          : undefined,
      };
    }
  }
}

/** The newest `n` Events, newest first. */
export function latestEvents(events: readonly EventObject[], n = EVENTS_IN_SNAPSHOT): EventObject[] {
  return [...events].sort((a, b) => (b.spec?.lastTimestamp ?? '').localeCompare(a.spec?.lastTimestamp ?? '')).slice(0, n);
}
