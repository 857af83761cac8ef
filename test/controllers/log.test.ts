// Structured logs: each key appears once per line, whatever the caller passes again.

import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../controllers/log.js';
import { repeatedKeys } from './processes.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      cb();
    },
  });
  return { lines, stream };
}

describe('controllers/log', () => {
  it('writes a key bound at start-up once, also when a caller or a child passes it again', () => {
    const { lines, stream } = capture();
    const log = createLogger({ bindings: { identity: 'B' }, destination: stream });
    log.info({ identity: 'B', controllers: ['a'] }, 'controllers started');
    const child = log.child({ controller: 'vc', identity: 'B' }).child({ key: 'VirtualCluster default/x' });
    child.warn({ identity: 'B', key: 'VirtualCluster default/x', err: 'boom' }, 'retrying');
    assert.equal(lines.length, 2);
    for (const l of lines) assert.deepEqual(repeatedKeys(l), [], l);
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(first.identity, 'B');
    assert.deepEqual(first.controllers, ['a']);
    assert.deepEqual([second.identity, second.controller, second.key, second.err], ['B', 'vc', 'VirtualCluster default/x', 'boom']);
  });

  it('keeps a differing value of a bound key under "shadowed" instead of repeating the key', () => {
    const { lines, stream } = capture();
    const log = createLogger({ bindings: { identity: 'B' }, destination: stream }).child({ key: 'VirtualCluster default/x' });
    log.info({ identity: 'A', key: 'VirtualNode default/x-0' }, 'other');
    assert.deepEqual(repeatedKeys(lines[0]), []);
    const o = JSON.parse(lines[0]) as Record<string, unknown>;
    assert.equal(o.identity, 'B');
    assert.equal(o.key, 'VirtualCluster default/x');
    assert.deepEqual(o.shadowed, { identity: 'A', key: 'VirtualNode default/x-0' });
  });
});
