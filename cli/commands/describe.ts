// vcctl describe KIND [NAME...] | KIND/NAME...: an object's metadata, spec, status, conditions and
// its recent events, for people.

import { LAST_APPLIED_ANNOTATION } from '../../api/apply/plan-apply.js';
import type { KindInfo } from '../../api/kinds.js';
import { NotFoundError, type Store } from '../../api/store/types.js';
import type { ApiObject, Condition, EventObject } from '../../api/types.js';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { namespaceOf, parseTargets, refFor } from '../kinds-arg.js';
import { escapeControl } from '../output/escape.js';
import { formatAge, renderTable } from '../output/table.js';
import { withStore } from '../store.js';
import { sortEvents } from './events.js';

const USAGE = `Usage: vcctl describe KIND [NAME...] | KIND/NAME... [-n NS] [-l SELECTOR]

Shows objects in detail: metadata, spec, status, a table of conditions and the recent events.
Without names, describes every object of KIND in the namespace (matching -l when given).`;

const RECENT_EVENTS = 10;

function kv(pairs: Record<string, string> | undefined, skip: string[] = []): string {
  const entries = Object.entries(pairs ?? {}).filter(([k]) => !skip.includes(k));
  if (entries.length === 0) return '<none>';
  return entries.map(([k, v]) => escapeControl(`${k}=${v}`)).join('\n              ');
}

function indent(text: string, by: string): string {
  return text.replace(/\n$/, '').split('\n').map((l) => `${by}${l}`).join('\n');
}

export async function describeObject(store: Store, o: ApiObject, now = Date.now()): Promise<string> {
  const { stringify } = await import('yaml');
  const m = o.metadata;
  const lines = [
    `Name:         ${m.name}`,
    ...(m.namespace !== undefined ? [`Namespace:    ${m.namespace}`] : []),
    `Kind:         ${o.kind}`,
    `Labels:       ${kv(m.labels)}`,
    `Annotations:  ${kv(m.annotations, [LAST_APPLIED_ANNOTATION])}`,
    `Created:      ${m.creationTimestamp ?? '<unknown>'} (${formatAge(m.creationTimestamp, now)} ago)`,
    `UID:          ${m.uid ?? '<none>'}`,
    `Generation:   ${m.generation ?? '<none>'}`,
  ];
  if (m.deletionTimestamp) lines.push(`Deleting:     since ${m.deletionTimestamp}`);
  if (m.finalizers?.length) lines.push(`Finalizers:   ${m.finalizers.join(', ')}`);
  if (m.ownerReferences?.length) lines.push(`Owners:       ${m.ownerReferences.map((r) => `${r.kind.toLowerCase()}/${r.name}`).join(', ')}`);
  if (o.spec !== undefined) lines.push('Spec:', indent(stringify(o.spec, { lineWidth: 0 }), '  '));
  const status = { ...(o.status as Record<string, unknown> | undefined) };
  const conditions = status.conditions as Condition[] | undefined;
  delete status.conditions;
  if (Object.keys(status).length > 0) lines.push('Status:', indent(stringify(status, { lineWidth: 0 }), '  '));
  if (conditions !== undefined) {
    lines.push('Conditions:');
    lines.push(conditions.length === 0 ? '  <none>' : indent(renderTable(
      ['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'],
      conditions.map((c) => [c.type, c.status, c.reason, formatAge(c.lastTransitionTime, now), c.message ?? '']),
    ), '  '));
  }
  if (o.kind !== 'Event') {
    const { items } = await store.list<EventObject>('Event', m.namespace !== undefined ? { namespace: m.namespace } : {});
    const mine = sortEvents(items.filter((e) => {
      const io = e.spec?.involvedObject;
      return io && io.kind === o.kind && io.name === m.name && (io.namespace ?? undefined) === (m.namespace ?? undefined)
        && (!io.uid || !m.uid || io.uid === m.uid);
    })).slice(-RECENT_EVENTS);
    lines.push('Events:');
    lines.push(mine.length === 0 ? '  <none>' : indent(renderTable(
      ['TYPE', 'REASON', 'AGE', 'FROM', 'MESSAGE'],
      mine.map((e) => [
        e.spec?.type ?? '', e.spec?.reason ?? '',
        `${formatAge(e.spec?.lastTimestamp, now)}${(e.spec?.count ?? 1) > 1 ? ` (x${e.spec?.count})` : ''}`,
        e.spec?.source ?? '', e.spec?.message ?? '',
      ]),
    ), '  '));
  }
  // Spec and Status come from yaml's stringify, which leaves C1 controls and bidi marks raw.
  return escapeControl(`${lines.join('\n')}\n`, { keepLines: true });
}

const command: Command = {
  summary: 'Show an object in detail, with its conditions and recent events',
  usage: USAGE,
  async run(argv, ctx) {
    const args = parseArgs(argv, { selector: { type: 'string', short: 'l' } });
    const targets = parseTargets(args.positionals);
    if (targets.kinds.length === 0 && targets.refs.length === 0) throw new UsageError('give a kind, and optionally names');
    return withStore(args, ctx, async (store) => {
      const objs: ApiObject[] = [];
      let code = 0;
      for (const r of targets.refs) {
        try {
          objs.push(await store.get(refFor(r.kind, r.name, args)));
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
          ctx.stderr.write(`error: ${r.kind.singular} "${r.name}" not found\n`);
          code = 1;
        }
      }
      for (const k of targets.kinds as KindInfo[]) {
        const { items } = await store.list(k.kind, {
          ...(k.namespaced && !args.allNamespaces ? { namespace: namespaceOf(args) } : {}),
          labelSelector: args.str('selector'),
        });
        objs.push(...items);
      }
      const texts: string[] = [];
      for (const o of objs) texts.push(await describeObject(store, o));
      ctx.stdout.write(texts.join('\n\n'));
      return code;
    });
  },
};

export default command;
