// A real `vc-manager` process running only the nodes controller, on an embedded store in DIR, with a
// testbed's physicalnodes.yaml applied through vcctl: what the full-node tests and
// hack/bench-testbed use to see testbed nodes become Ready as the operator sees them.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../api/store/open-store.js';
import type { Store } from '../../api/store/types.js';
import type { PhysicalNode } from '../../api/types.js';
import { main as vcctlMain } from '../../cli/vcctl.js';
import { VC_MANAGER_NODE_FLAGS } from '../../operator/node-flags.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface NodesManager {
  store: Store;
  log: string;
  /** The PhysicalNodes as the store has them now. */
  nodes(): Promise<PhysicalNode[]>;
  /** Resolves once every node named is Ready=True; rejects after timeoutMs naming the laggards. */
  waitReady(names: string[], timeoutMs: number): Promise<void>;
  stop(): Promise<void>;
}

/** Applies `physicalNodesYaml` to a fresh store at DIR/store.db and starts vc-manager (nodes controller). */
export async function startNodesManager(dir: string, physicalNodesYaml: string, opts: { sshTimeoutSeconds?: number } = {}): Promise<NodesManager> {
  const storeUrl = `file:${join(dir, 'store.db')}`;
  const store = await openStore(storeUrl);
  const out = new PassThrough();
  let stderr = '';
  out.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await vcctlMain(['apply', '-f', physicalNodesYaml], { stdout: new PassThrough(), stderr: out, stdin: Readable.from(['']), env: { ...process.env, VCCTL_STORE: storeUrl } });
  if (code !== 0) {
    await store.close();
    throw new Error(`vcctl apply -f ${physicalNodesYaml}: ${stderr}`);
  }
  const log = join(dir, 'vc-manager.log');
  const logStream = createWriteStream(log, { flags: 'a' });
  // from the sources, so the manager matches the code under test
  const p: ChildProcess = spawn(process.execPath, [...VC_MANAGER_NODE_FLAGS, '--import', 'tsx', join(ROOT, 'operator/vc-manager.ts'), '--store', storeUrl,
    '--metrics-addr', '127.0.0.1:0', '--identity', 'nodes-manager', '--lease-ttl', '5', '--controllers', 'nodes',
    ...(opts.sshTimeoutSeconds ? ['--ssh-timeout', String(opts.sshTimeoutSeconds)] : [])], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.stdout!.pipe(logStream);
  p.stderr!.pipe(logStream);
  const nodes = async (): Promise<PhysicalNode[]> => (await store.list<PhysicalNode>('PhysicalNode')).items;
  const isReady = (pn: PhysicalNode): boolean => !!pn.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
  return {
    store,
    log,
    nodes,
    async waitReady(names, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const all = await nodes();
        const notReady = names.filter((n) => !all.some((pn) => pn.metadata.name === n && isReady(pn)));
        if (!notReady.length) return;
        if (p.exitCode !== null) throw new Error(`vc-manager exited (${p.exitCode}); see ${log}`);
        if (Date.now() > deadline) {
          const why = notReady.map((n) => {
            const c = all.find((pn) => pn.metadata.name === n)?.status?.conditions?.find((x) => x.type === 'Ready');
            return `${n}: ${c ? `${c.reason}: ${c.message ?? ''}` : 'not probed'}`;
          });
          throw new Error(`not Ready after ${timeoutMs} ms: ${why.join('; ')}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      if (p.exitCode === null && p.signalCode === null) {
        const exited = new Promise<void>((r) => p.once('exit', () => r()));
        p.kill('SIGTERM');
        const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
      await store.close().catch(() => {});
    },
  };
}
