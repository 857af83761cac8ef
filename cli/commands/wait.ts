// vcctl wait KIND/NAME... --for=condition=TYPE[=STATUS] | --for=delete | --for=jsonpath={.path}=VALUE
//            [--timeout=DURATION]

import { getCondition } from '../../api/conditions.js';
import { NotFoundError } from '../../api/store/types.js';
import type { ApiObject, Condition } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { parseDuration } from '../duration.js';
import { displayName, parseTargets, refFor } from '../kinds-arg.js';
import { compileJsonPath } from '../output/jsonpath.js';
import { withStore } from '../store.js';
import { waitForObject } from '../wait-for.js';

const USAGE = `Usage: vcctl wait KIND/NAME... --for=CONDITION [--timeout=DURATION]

Waits until every named object meets the condition, printing "<kind>/<name> condition met".
Exits 1 on timeout, and at once when an object does not exist or is deleted while waiting
(only --for=delete waits for an object to be absent).

  --for=condition=Ready          the Ready condition is True (condition=Ready=False for False) and
                                 written for the object's current generation (its observedGeneration)
  --for=delete                   the object is gone
  --for=jsonpath={.status.phase}=Running   a field has a value
  --timeout DURATION             default 30s (500ms, 30s, 5m, 1h; at most 596h); 0 checks once`;

type Predicate = (o: ApiObject | undefined) => boolean;

export function parseFor(text: string): { predicate: Predicate; what: string } {
  if (text === 'delete') return { predicate: (o) => o === undefined, what: 'deletion' };
  const cond = /^condition=([^=]+)(?:=(.*))?$/.exec(text);
  if (cond) {
    const [, type, want = 'True'] = cond;
    return {
      predicate: (o) => {
        const c = getCondition((o?.status as { conditions?: Condition[] } | undefined)?.conditions, type);
        // A condition written for an older spec says nothing about the current one (after an
        // update, Ready may still be True from before): it counts once it has seen this generation.
        const current = c?.observedGeneration === undefined || o?.metadata.generation === undefined || c.observedGeneration >= o.metadata.generation;
        return current && c?.status.toLowerCase() === want.toLowerCase();
      },
      what: `condition ${type}=${want}`,
    };
  }
  const jp = /^jsonpath=(\{[^}]*\}|[^=]+)(?:=(.*))?$/.exec(text);
  if (jp) {
    const read = compileJsonPath(jp[1]);
    const want = jp[2];
    return {
      predicate: (o) => {
        if (!o) return false;
        const got = read(o);
        return want === undefined ? got.length > 0 : got.some((v) => String(v) === want);
      },
      what: `${jp[1]}${want === undefined ? '' : `=${want}`}`,
    };
  }
  throw new UsageError(`--for must be condition=TYPE[=STATUS], delete or jsonpath={.path}=VALUE, got "${text}"`);
}

const command: Command = {
  summary: 'Wait for a condition, a field value or deletion',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { for: { type: 'string' }, timeout: { type: 'string' } });
    const forText = args.str('for');
    if (!forText) throw new UsageError('give --for=condition=TYPE, --for=delete or --for=jsonpath=...');
    const { predicate, what } = parseFor(forText);
    const timeoutMs = parseDuration(args.str('timeout') ?? '30s', 'timeout');
    const targets = parseTargets(args.positionals);
    if (targets.refs.length === 0) throw new UsageError('name the objects: vcctl wait KIND/NAME --for=...');
    return withStore(args, ctx, async (store) => {
      const deadline = Date.now() + timeoutMs;
      for (const t of targets.refs) {
        const ref = refFor(t.kind, t.name, args);
        // As kubectl: only --for=delete waits on an absent object; otherwise absent is an error at
        // once, and so is the object going away while we wait for something else.
        let seen = false;
        const absent = (o: ApiObject | undefined): Error | undefined => {
          if (o !== undefined) seen = true;
          if (forText === 'delete' || o !== undefined) return undefined;
          const where = ref.namespace !== undefined ? ` in namespace "${ref.namespace}"` : '';
          return new NotFoundError(seen
            ? `${t.kind.singular} "${t.name}"${where} was deleted while waiting for ${what}`
            : `${t.kind.singular} "${t.name}" not found${where}`);
        };
        await waitForObject(store, ref, predicate, Math.max(0, deadline - Date.now()), what, absent);
        ctx.stdout.write(`${displayName(t.kind.kind, t.name)} ${forText === 'delete' ? 'deleted' : 'condition met'}\n`);
      }
      return 0;
    });
  },
};

export default command;
