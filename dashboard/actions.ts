// The dashboard's actions are vcctl's commands, run in this process against the manager's store:
// the same checks, the same transactions (a migration reserves its room on the target, drain
// re-places with the VC's strategy), the same messages. The request names objects only; each
// name is checked as a DNS-1123 label before it becomes an argument, and arguments are argv
// elements of the command, never text a shell reads.

import { PassThrough, Readable } from 'node:stream';
import { main as vcctl } from '../cli/vcctl.js';

export const ACTIONS = ['migrate', 'suspend', 'resume', 'cordon', 'uncordon', 'drain'] as const;
export type ActionName = (typeof ACTIONS)[number];

export interface ActionRequest {
  /** VirtualNode (migrate) or VirtualCluster (suspend, resume). */
  namespace?: string;
  name?: string;
  /** The target (migrate) or the PhysicalNode acted on (cordon, uncordon, drain). */
  node?: string;
}

export interface ActionResult {
  code: number;
  output: string;
}

export class ActionInputError extends Error {}

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function label(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length > 63 || !LABEL.test(v)) {
    throw new ActionInputError(`${field}: give a name of lowercase letters, digits and "-" (at most 63), not ${JSON.stringify(v)}`);
  }
  return v;
}

/** The vcctl arguments for an action; throws ActionInputError on a bad request. */
export function actionArgv(action: string, body: unknown): string[] {
  if (!(ACTIONS as readonly string[]).includes(action)) throw new ActionInputError(`unknown action "${action}": use one of ${ACTIONS.join(', ')}`);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new ActionInputError('the request body must be a JSON object');
  const b = body as ActionRequest;
  switch (action as ActionName) {
    case 'migrate':
      return ['migrate', `vn/${label(b.name, 'name')}`, '--to', label(b.node, 'node'), '-n', label(b.namespace ?? 'default', 'namespace')];
    case 'suspend':
    case 'resume':
      return [action, `vc/${label(b.name, 'name')}`, '-n', label(b.namespace ?? 'default', 'namespace')];
    case 'cordon':
    case 'uncordon':
    case 'drain':
      return [action, label(b.node, 'node')];
  }
}

/** Runs vcctl with argv on the store at storeUrl (undefined: vcctl's default store). */
export async function runAction(argv: string[], storeUrl: string | undefined): Promise<ActionResult> {
  let output = '';
  const out = new PassThrough();
  out.on('data', (d: Buffer) => (output += d.toString()));
  const env = { ...process.env };
  if (storeUrl) env.VCCTL_STORE = storeUrl;
  const code = await vcctl(argv, { stdout: out, stderr: out, stdin: Readable.from([]), env });
  return { code, output: output.trimEnd() };
}
