// Runs vc-manager as a child process for integration tests and reads its JSON log lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { parseDocument } from 'yaml';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ManagerProcess {
  identity: string;
  child: ChildProcess;
  lines: Record<string, unknown>[];
  /** The same lines as written (to check what JSON.parse would hide, such as a repeated key). */
  text: string[];
  /** The metrics address it logged, once started. */
  addr?: string;
  exited: Promise<number | null>;
  /** SIGKILLs the process if it still runs (by its PID) and waits for it. */
  kill(): Promise<void>;
}

/** `wrap`: argv the manager runs under, e.g. `ip netns exec NS` (which execs it in place: same PID). */
export function startManager(identity: string, args: string[], wrap: string[] = []): ManagerProcess {
  const argv = [process.execPath, '--import', 'tsx', join(ROOT, 'operator', 'vc-manager.ts'),
    '--identity', identity, '--metrics-addr', '127.0.0.1:0', ...args];
  const [cmd, ...rest] = [...wrap, ...argv];
  const child = spawn(cmd!, rest, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const p: ManagerProcess = {
    identity,
    child,
    lines: [],
    text: [],
    exited: new Promise((r) => child.on('exit', (code) => r(code))),
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT');
        child.kill('SIGKILL');
      }
      await p.exited;
    },
  };
  let buf = '';
  child.stderr?.on('data', (b: Buffer) => {
    buf += b.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      p.text.push(line);
      try {
        const o = JSON.parse(line) as Record<string, unknown>;
        o.at = Date.now();
        p.lines.push(o);
        if (o.msg === 'vc-manager started') p.addr = String(o.metricsAddr);
      } catch {
        p.lines.push({ msg: line, raw: true, at: Date.now() });
      }
    }
  });
  return p;
}

/** The keys of a JSON line that appear more than once (JSON is YAML 1.2; uniqueKeys finds them). */
export function repeatedKeys(line: string): string[] {
  const doc = parseDocument(line, { uniqueKeys: true });
  return doc.errors.filter((e) => e.code === 'DUPLICATE_KEY').map((e) => line.slice(e.pos[0], e.pos[1]));
}

export async function httpGet(addr: string, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${addr}${path}`);
  return { status: res.status, body: await res.text() };
}
