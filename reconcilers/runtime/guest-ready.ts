// GuestReady: whether the guest inside a running VM has reported in, as a pure function of what
// the runtime observed. `Running` says the hypervisor runs the domain; `GuestReady` says the guest
// booted: its agent answered a ping over virtio-serial (OSTemplate spec.guestAgent), or, for
// images without the agent, it printed `VIRTUALINUX-READY` on its console. A guest that does not
// report within the VC's spec.node.bootTimeout (default 5 min) after its start is
// GuestReady=False with reason BootTimeout (and one Warning Event); it is still probed, so a late
// guest turns True. Once True, it stays True while the same boot runs (through live migration),
// and is reset by the next start or restart. A resume from saved memory continues the boot that
// was saved: if the guest had reported in before the suspend (status.savedGuestReady), it is True
// again at once (a restored guest prints no new READY line, and Xen's console log starts empty);
// if it had not, it is Booting with the timeout counting from the resume.

import type { Condition, VNPhase } from '../../api/types.js';
import type { ConditionInput } from '../../api/conditions.js';

export const GUEST_READY = 'GuestReady';
export const DEFAULT_BOOT_TIMEOUT_MS = 5 * 60_000;
/** How often a booting guest is probed. */
export const BOOT_PROBE_MS = 1_000;

/**
 * Milliseconds of a duration as the CRD admits it (`90s`, `5m`, `1h30m`, `500ms`); the default for
 * an absent value. The schema's pattern has already refused anything else.
 */
export function bootTimeoutMs(text: string | undefined): number {
  if (!text) return DEFAULT_BOOT_TIMEOUT_MS;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|s|m|h)/g)) total += Number(m[1]) * unit[m[2]!]!;
  return total > 0 ? total : DEFAULT_BOOT_TIMEOUT_MS;
}

/** What a probe of the guest found: the agent's answer, the console's READY line, or nothing. */
export type GuestProbe =
  | { by: 'agent'; node: string; ip: string; uptimeSeconds: number }
  | { by: 'console'; line: string }
  | { by: 'none' };

export interface GuestReadyInput {
  /** The VirtualNode's phase as this reconcile reports it. */
  phase: VNPhase;
  /** This reconcile started, resumed or restarted the domain: a new boot. */
  booted: boolean;
  /** This reconcile resumed the domain from saved memory in which the guest had reported in
   * (what GuestReady said then): the same boot goes on. */
  resumedReady?: { reason: string; message: string };
  previous: Condition | undefined;
  /** When the current boot started (status.bootTime); undefined for a domain found running. */
  bootTimeMs: number | undefined;
  nowMs: number;
  timeoutMs: number;
  /** The probe's finding, when the runtime probed (see shouldProbeGuest). */
  probe?: GuestProbe;
}

export interface GuestReadyDecision {
  /** undefined: leave the stored condition as it is. */
  condition?: ConditionInput;
  /** The boot timeout has just been reached: say so in a Warning Event. */
  timedOut?: boolean;
  /** Come back this soon to probe again. */
  requeueAfterMs?: number;
}

/** Whether this reconcile should probe the guest: it runs, did not just start, and is not known ready. */
export function shouldProbeGuest(phase: VNPhase, booted: boolean, previous: Condition | undefined): boolean {
  return phase === 'Running' && !booted && previous?.status !== 'True';
}

function duration(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${Math.round(ms / 1000)}s`;
}

export function decideGuestReady(i: GuestReadyInput): GuestReadyDecision {
  if (i.phase === 'Migrating') return {}; // the same boot goes on, elsewhere
  if (i.phase !== 'Running') {
    return { condition: { type: GUEST_READY, status: 'False', reason: 'NotRunning', message: `the VM is ${i.phase}` } };
  }
  const waiting = `waiting for the guest to report in (boot timeout ${duration(i.timeoutMs)})`;
  if (i.booted && i.resumedReady) {
    return { condition: { type: GUEST_READY, status: 'True', reason: 'Resumed', message: `resumed from saved memory; before the suspend: ${i.resumedReady.message}` } };
  }
  if (i.booted) return { condition: { type: GUEST_READY, status: 'False', reason: 'Booting', message: waiting }, requeueAfterMs: BOOT_PROBE_MS };
  if (i.previous?.status === 'True') return {};
  if (i.probe?.by === 'agent') {
    return { condition: { type: GUEST_READY, status: 'True', reason: 'AgentReported', message: `the guest agent answered: ${i.probe.node} ${i.probe.ip}` } };
  }
  if (i.probe?.by === 'console') {
    return { condition: { type: GUEST_READY, status: 'True', reason: 'ConsoleReady', message: `the guest printed: ${i.probe.line}` } };
  }
  const since = i.bootTimeMs ?? i.nowMs;
  if (i.nowMs - since >= i.timeoutMs) {
    return {
      condition: {
        type: GUEST_READY, status: 'False', reason: 'BootTimeout',
        message: `the guest did not report in within ${duration(i.timeoutMs)} of its start; see its console (vcctl logs)`,
      },
      timedOut: i.previous?.reason !== 'BootTimeout',
      requeueAfterMs: 10_000,
    };
  }
  return { condition: { type: GUEST_READY, status: 'False', reason: 'Booting', message: waiting }, requeueAfterMs: BOOT_PROBE_MS };
}
