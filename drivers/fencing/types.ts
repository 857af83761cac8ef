// The fencing contract (high availability): before the VMs of a lost physical node are started
// anywhere else, the node is powered off by a fencing agent, and the power-off counts only once the
// agent's own status answer says the node is off. An agent never guesses: a status it cannot read
// is 'unknown', which is not a fence.

import { NamedError } from '../../api/errors.js';

/** The node's power as the agent reads it. Only 'off' confirms a fence. */
export type PowerState = 'on' | 'off' | 'unknown';

export interface FencingAgent {
  /** The agent's name as in PhysicalNode spec.fencing.agent. */
  readonly name: string;
  /**
   * Asks for the node to be powered off. Idempotent: a node already off stays off. Throws
   * FencingError when the request cannot be made; a request that returns is NOT a confirmation.
   */
  powerOff(signal?: AbortSignal): Promise<void>;
  /** Reads the node's power state. Never throws for a node that answers; 'unknown' otherwise. */
  status(signal?: AbortSignal): Promise<{ state: PowerState; detail: string }>;
}

export class FencingError extends NamedError {}
