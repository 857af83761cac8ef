// The columns `vcctl get` prints per kind; `wide` adds the extra ones. Values come from the
// object only (no lookups), so printing 10,000 objects is a single pass.

import { getCondition } from '../../api/conditions.js';
import type {
  ApiObject, Condition, EventSpec, MigrationSpec, MigrationStatus, OSTemplateSpec, PhysicalNodeSpec,
  PhysicalNodeStatus, VirtualClusterSpec, VirtualClusterStatus, VirtualNodeSpec, VirtualNodeStatus,
  VolumeSpec, VolumeStatus,
} from '../../api/types.js';
import { formatAge } from './table.js';

export interface Column {
  header: string;
  wide?: boolean;
  value(o: ApiObject, now: number): string;
}

const none = '<none>';
const str = (v: unknown): string => (v === undefined || v === null || v === '' ? none : String(v));
const spec = <T>(o: ApiObject): Partial<T> => (o.spec ?? {}) as Partial<T>;
const status = <T>(o: ApiObject): Partial<T> => (o.status ?? {}) as Partial<T>;
const conditions = (o: ApiObject): Condition[] | undefined => (o.status as { conditions?: Condition[] } | undefined)?.conditions;
const ready = (o: ApiObject): string => getCondition(conditions(o), 'Ready')?.status ?? 'Unknown';
const age: Column = { header: 'AGE', value: (o, now) => formatAge(o.metadata.creationTimestamp, now) };
export const nameColumn: Column = { header: 'NAME', value: (o) => o.metadata.name };

const BY_KIND: Record<string, Column[]> = {
  PhysicalNode: [
    nameColumn,
    { header: 'ADDRESS', value: (o) => str(spec<PhysicalNodeSpec>(o).address) },
    { header: 'READY', value: (o) => ready(o) + (spec<PhysicalNodeSpec>(o).unschedulable ? ',SchedulingDisabled' : '') },
    { header: 'CORES', value: (o) => str(spec<PhysicalNodeSpec>(o).capacity?.cores) },
    { header: 'MEMORY', value: (o) => mib(spec<PhysicalNodeSpec>(o).capacity?.memoryMiB) },
    {
      header: 'ALLOCATED',
      value: (o) => {
        const a = status<PhysicalNodeStatus>(o).allocated;
        return a ? `${a.vms} vms, ${a.cores} cores, ${a.memoryMiB}Mi` : none;
      },
    },
    age,
    { header: 'HYPERVISOR', wide: true, value: (o) => str(spec<PhysicalNodeSpec>(o).hypervisor) },
    { header: 'TRANSPORT', wide: true, value: (o) => str(spec<PhysicalNodeSpec>(o).transport ?? 'ssh') },
    { header: 'MAXVMS', wide: true, value: (o) => str(spec<PhysicalNodeSpec>(o).maxVMs) },
    { header: 'VERSION', wide: true, value: (o) => str(status<PhysicalNodeStatus>(o).hypervisorVersion) },
  ],
  OSTemplate: [
    nameColumn,
    { header: 'SOURCE', value: (o) => str(spec<OSTemplateSpec>(o).image?.path ?? spec<OSTemplateSpec>(o).image?.tarball) },
    { header: 'FORMAT', value: (o) => str(spec<OSTemplateSpec>(o).image?.tarball ? 'tarball' : spec<OSTemplateSpec>(o).image?.format) },
    { header: 'REVISION', value: (o) => str(spec<OSTemplateSpec>(o).revision) },
    age,
    { header: 'KERNEL', wide: true, value: (o) => str(spec<OSTemplateSpec>(o).boot?.kernel) },
  ],
  VirtualCluster: [
    nameColumn,
    {
      header: 'NODES',
      value: (o) => {
        const running = (status<VirtualClusterStatus>(o).nodes ?? []).filter((n) => n.phase === 'Running').length;
        return `${running}/${str(spec<VirtualClusterSpec>(o).nodes)}`;
      },
    },
    { header: 'STATE', value: (o) => str(spec<VirtualClusterSpec>(o).state) },
    { header: 'PHASE', value: (o) => str(status<VirtualClusterStatus>(o).phase) },
    { header: 'READY', value: ready },
    age,
    { header: 'STRATEGY', wide: true, value: (o) => str(spec<VirtualClusterSpec>(o).placement?.strategy) },
    { header: 'MODE', wide: true, value: (o) => str(spec<VirtualClusterSpec>(o).placement?.mode) },
    { header: 'SUBNET', wide: true, value: (o) => str(status<VirtualClusterStatus>(o).subnet ?? spec<VirtualClusterSpec>(o).network?.subnet) },
    { header: 'TEMPLATE', wide: true, value: (o) => str(spec<VirtualClusterSpec>(o).template) },
  ],
  VirtualNode: [
    nameColumn,
    { header: 'CLUSTER', value: (o) => str(spec<VirtualNodeSpec>(o).cluster) },
    { header: 'PHYSICALNODE', value: (o) => str(spec<VirtualNodeSpec>(o).physicalNode) },
    { header: 'PHASE', value: (o) => str(status<VirtualNodeStatus>(o).phase) },
    { header: 'IP', value: (o) => str(status<VirtualNodeStatus>(o).ip) },
    age,
    { header: 'VCPUS', wide: true, value: (o) => str(spec<VirtualNodeSpec>(o).vcpus) },
    { header: 'MEMORY', wide: true, value: (o) => mib(spec<VirtualNodeSpec>(o).memoryMiB) },
    { header: 'HOST', wide: true, value: (o) => str(status<VirtualNodeStatus>(o).host) },
    // True once the guest reported in; otherwise why not (Booting, BootTimeout, NotRunning).
    { header: 'GUESTREADY', wide: true, value: (o) => { const c = getCondition(conditions(o), 'GuestReady'); return c ? (c.status === 'True' ? 'True' : c.reason || c.status) : none; } },
    { header: 'MESSAGE', wide: true, value: (o) => str(status<VirtualNodeStatus>(o).message) },
  ],
  Volume: [
    nameColumn,
    { header: 'ROLE', value: (o) => str(spec<VolumeSpec>(o).role) },
    { header: 'CLUSTER', value: (o) => str(spec<VolumeSpec>(o).cluster) },
    { header: 'DRIVER', value: (o) => str(spec<VolumeSpec>(o).driver) },
    { header: 'SIZE', value: (o) => (spec<VolumeSpec>(o).sizeGiB === undefined ? none : `${spec<VolumeSpec>(o).sizeGiB}Gi`) },
    { header: 'PHASE', value: (o) => str(status<VolumeStatus>(o).phase) },
    age,
    { header: 'SOURCE', wide: true, value: (o) => str(spec<VolumeSpec>(o).source) },
    { header: 'PATH', wide: true, value: (o) => str(status<VolumeStatus>(o).path) },
  ],
  Migration: [
    nameColumn,
    { header: 'VIRTUALNODE', value: (o) => str(spec<MigrationSpec>(o).virtualNode) },
    { header: 'SOURCE', value: (o) => str(status<MigrationStatus>(o).sourceNode) },
    { header: 'TARGET', value: (o) => str(spec<MigrationSpec>(o).targetNode) },
    { header: 'PHASE', value: (o) => str(status<MigrationStatus>(o).phase) },
    { header: 'DOWNTIME', value: (o) => ms(status<MigrationStatus>(o).downtimeMs) },
    age,
    { header: 'TOTAL', wide: true, value: (o) => ms(status<MigrationStatus>(o).totalMs) },
    { header: 'MESSAGE', wide: true, value: (o) => str(status<MigrationStatus>(o).message) },
  ],
  Event: [
    { header: 'LAST SEEN', value: (o, now) => formatAge(spec<EventSpec>(o).lastTimestamp, now) },
    { header: 'TYPE', value: (o) => str(spec<EventSpec>(o).type) },
    { header: 'REASON', value: (o) => str(spec<EventSpec>(o).reason) },
    {
      header: 'OBJECT',
      value: (o) => {
        const io = spec<EventSpec>(o).involvedObject;
        return io ? `${io.kind.toLowerCase()}/${io.name}` : none;
      },
    },
    { header: 'MESSAGE', value: (o) => str(spec<EventSpec>(o).message) },
    { header: 'COUNT', wide: true, value: (o) => str(spec<EventSpec>(o).count) },
    { header: 'FIRST SEEN', wide: true, value: (o, now) => formatAge(spec<EventSpec>(o).firstTimestamp, now) },
    { header: 'SOURCE', wide: true, value: (o) => str(spec<EventSpec>(o).source) },
    { header: 'NAME', wide: true, value: (o) => o.metadata.name },
  ],
  GitSource: [
    nameColumn,
    // vcctl sync's directory, or vc-manager's URL#REF
    {
      header: 'SOURCE',
      value: (o) => {
        const sp = o.spec as { dir?: string; url?: string; ref?: string } | undefined;
        return str(sp?.dir ?? (sp?.url && `${sp.url}#${sp.ref ?? 'main'}`));
      },
    },
    { header: 'REVISION', value: (o) => str((o.status as { lastAppliedRevision?: string } | undefined)?.lastAppliedRevision?.slice(0, 12)) },
    { header: 'READY', value: ready },
    { header: 'APPLIED', value: (o) => str((o.status as { appliedCount?: number } | undefined)?.appliedCount) },
    { header: 'PRUNED', value: (o) => str((o.status as { prunedCount?: number } | undefined)?.prunedCount) },
    age,
    { header: 'FETCHED', wide: true, value: (o) => str((o.status as { fetchedRevision?: string } | undefined)?.fetchedRevision?.slice(0, 12)) },
    { header: 'ERROR', wide: true, value: (o) => str((o.status as { lastError?: string } | undefined)?.lastError?.split('\n')[0]) },
  ],
};

function mib(v: number | undefined): string {
  return v === undefined ? none : `${v}Mi`;
}
function ms(v: number | undefined): string {
  return v === undefined ? none : `${Math.round(v)}ms`;
}

/** The columns for a kind (unknown kinds: NAME and AGE). */
export function columnsFor(kind: string, wide: boolean): Column[] {
  const cols = BY_KIND[kind] ?? [nameColumn, age];
  return wide ? cols : cols.filter((c) => !c.wide);
}
