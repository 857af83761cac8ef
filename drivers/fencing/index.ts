// Picks the fencing agent for a PhysicalNode (spec.fencing.agent), checking the agent's own fields:
// a missing one is a FencingError naming the field.

import type { FencingSpec } from '../../api/types.js';
import { IpmiFencingAgent, type CommandRunner } from './ipmi-agent.js';
import { TestbedFencingAgent } from './testbed-agent.js';
import { FencingError, type FencingAgent } from './types.js';

export interface FencingOptions {
  /** Runs ipmitool (argv only); tests pass a recorded runner. */
  run?: CommandRunner;
}

export function createFencingAgent(node: string, spec: FencingSpec, opts: FencingOptions = {}): FencingAgent {
  const need = (field: keyof FencingSpec): string => {
    const v = spec[field];
    if (typeof v !== 'string' || v === '') {
      throw new FencingError(`PhysicalNode ${node}: spec.fencing.${field} is required for the ${spec.agent} agent`);
    }
    return v;
  };
  switch (spec.agent) {
    case 'testbed':
      return new TestbedFencingAgent(need('testbedDir'), node);
    case 'ipmi':
      return new IpmiFencingAgent({ host: need('host'), user: need('user'), passwordFile: need('passwordFile') }, opts.run);
    default:
      throw new FencingError(`PhysicalNode ${node}: spec.fencing.agent ${JSON.stringify((spec as { agent: unknown }).agent)} is not a fencing agent; use testbed or ipmi`);
  }
}

export * from './types.js';
