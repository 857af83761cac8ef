// The vcctl commands. Each is loaded only when it runs (vcctl.ts imports this file and nothing
// else up front), so adding a command here costs start-up nothing. A command module exports its
// Command (cli/command.ts) as default.

import type { Command } from '../command.js';

export interface CommandEntry {
  /** One line for `vcctl help` (the same as the module's summary). */
  summary: string;
  load: () => Promise<{ default: Command }>;
}

export const COMMANDS: Record<string, CommandEntry> = {
  apply: { summary: 'Create or update objects from manifests (three-way merge)', load: () => import('./apply.js') },
  get: { summary: 'List objects, or show some in a format (-o wide|yaml|json|name)', load: () => import('./get.js') },
  describe: { summary: 'Show an object in detail, with its conditions and recent events', load: () => import('./describe.js') },
  delete: { summary: 'Delete objects by name or from manifests', load: () => import('./delete.js') },
  diff: { summary: 'Show what apply would change (exit 0 same, 1 differs)', load: () => import('./diff.js') },
  explain: { summary: 'Document a kind or field from its schema', load: () => import('./explain.js') },
  wait: { summary: 'Wait for a condition, a field value or deletion', load: () => import('./wait.js') },
  events: { summary: 'List events, oldest first', load: () => import('./events.js') },
  sync: { summary: 'GitOps: keep the store in step with a directory of manifests', load: () => import('./sync.js') },
  plan: { summary: 'Preview the placement of the VirtualClusters in a file (no writes)', load: () => import('./plan.js') },
  cordon: { summary: 'Mark PhysicalNodes unschedulable', load: () => import('./cordon.js') },
  uncordon: { summary: 'Mark PhysicalNodes schedulable again', load: () => import('./uncordon.js') },
  drain: { summary: 'Cordon a PhysicalNode and live-migrate its VMs elsewhere', load: () => import('./drain.js') },
  migrate: { summary: 'Live-migrate a VirtualNode to another PhysicalNode', load: () => import('./migrate.js') },
  suspend: { summary: 'Suspend every VM of VirtualClusters to disk', load: () => import('./suspend.js') },
  resume: { summary: 'Resume VirtualClusters (re-placed first if their placement changed)', load: () => import('./resume.js') },
  logs: { summary: "Print a VirtualNode's guest console", load: () => import('./logs.js') },
  console: { summary: "Attach to a VirtualNode's serial console (Ctrl-] detaches)", load: () => import('./console.js') },
  restart: { summary: 'Reboot the VM of a VirtualNode, or every VM of a VirtualCluster (disks kept)', load: () => import('./restart.js') },
  version: { summary: 'Print the version', load: () => import('./version.js') },
};
