// hack/bench-ssh: see the wrapper. Both sides run in alternating blocks so that load from other
// work on the machine hits them alike. Per-command latency = wall time of one command, sequential.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { SshTransport } from '../../drivers/transport/ssh-transport.js';
import { execOk } from '../../drivers/transport/types.js';
import { readTestbed, testbedDown, testbedUp, type TestbedState } from '../lib/testbed.js';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '1000' }, fresh: { type: 'string', default: '30' }, dir: { type: 'string' }, block: { type: 'string', default: '50' } },
});
const COUNT = Number(values.count);
const FRESH = Number(values.fresh);
const BLOCK = Number(values.block);
const COMMAND = ['true'];

function run(argv: string[]): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const c = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolvePromise(0) : reject(new Error(`${argv.join(' ')} exited ${code}: ${err}`))));
  });
}

function stats(ms: number[]): { mean: number; p50: number; p95: number } {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { mean: ms.reduce((a, b) => a + b, 0) / ms.length, p50: q(0.5), p95: q(0.95) };
}
const fmt = (x: { mean: number; p50: number; p95: number }) =>
  `mean ${x.mean.toFixed(2)} ms  p50 ${x.p50.toFixed(2)} ms  p95 ${x.p95.toFixed(2)} ms`;

async function timeIt(f: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main(): Promise<void> {
  const own = !values.dir;
  const base = own ? await mkdtemp(join(tmpdir(), 'vl-bench-ssh-')) : resolve(process.env.VC_CALLER_CWD ?? '.', values.dir!);
  let tb: TestbedState | undefined;
  const ours: SshTransport[] = [];
  try {
    tb = own ? await testbedUp({ nodes: 1, dir: join(base, 'tb') }) : await readTestbed(base);
    if (!tb) throw new Error(`no testbed in ${base}`);
    const node = tb.nodes[0]!;
    const knownHosts = join(tb.dir, 'bench_known_hosts');
    await writeFile(knownHosts, `${node.address} ${node.hostKey}\n`);
    const controlPath = join(tb.dir, 'bench-cm-%C');
    const sshBase = [
      'ssh', '-i', tb.identityFile, '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${knownHosts}`,
      '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes', '-o', 'HostKeyAlgorithms=ssh-ed25519', '-p', String(node.port),
    ];
    const muxed = [...sshBase, '-o', 'ControlMaster=auto', '-o', `ControlPath=${controlPath}`, '-o', 'ControlPersist=300', `root@${node.address}`, ...COMMAND];
    const fresh = [...sshBase, '-o', 'ControlMaster=no', '-o', 'ControlPath=none', `root@${node.address}`, ...COMMAND];

    const t = new SshTransport({ host: node.name, address: node.address, port: node.port, identityFile: tb.identityFile, hostKey: node.hostKey });
    ours.push(t);
    // warm up both: connection, master, page cache
    for (let i = 0; i < 20; i++) {
      await execOk(t, COMMAND);
      await run(muxed);
    }
    const oursMs: number[] = [];
    const theirsMs: number[] = [];
    for (let done = 0; done < COUNT; done += BLOCK) {
      const n = Math.min(BLOCK, COUNT - done);
      for (let i = 0; i < n; i++) oursMs.push(await timeIt(() => execOk(t, COMMAND)));
      for (let i = 0; i < n; i++) theirsMs.push(await timeIt(() => run(muxed)));
    }
    const a = stats(oursMs);
    const b = stats(theirsMs);
    const ratio = a.mean / b.mean;
    console.log(`pooled: ${COUNT} x \`${COMMAND.join(' ')}\` on ${node.name} (${node.address}), sequential, alternating blocks of ${BLOCK}`);
    console.log(`  SshTransport (pooled connection)          ${fmt(a)}`);
    console.log(`  baseline: OpenSSH ControlMaster client     ${fmt(b)}`);
    console.log(`  ratio ours/baseline (mean) ${ratio.toFixed(2)}x  target <= 1.5x  ${ratio <= 1.5 ? 'MET' : 'NOT MET'}`);

    const freshOurs: number[] = [];
    const freshTheirs: number[] = [];
    for (let i = 0; i < FRESH; i++) {
      freshOurs.push(
        await timeIt(async () => {
          const f = new SshTransport({ host: node.name, address: node.address, port: node.port, identityFile: tb!.identityFile, hostKey: node.hostKey });
          try {
            await execOk(f, COMMAND);
          } finally {
            await f.close();
          }
        }),
      );
      freshTheirs.push(await timeIt(() => run(fresh)));
    }
    const fa = stats(freshOurs);
    const fb = stats(freshTheirs);
    console.log(`fresh connection: ${FRESH} x (connect, authenticate, \`${COMMAND.join(' ')}\`, close), alternating`);
    console.log(`  SshTransport (new connection)             ${fmt(fa)}`);
    console.log(`  baseline: \`ssh host true\` (no master)     ${fmt(fb)}`);
    console.log(`  ratio ours/baseline (mean) ${(fa.mean / fb.mean).toFixed(2)}x`);
    await run([...sshBase, '-o', `ControlPath=${controlPath}`, '-O', 'exit', `root@${node.address}`]).catch(() => {});
  } finally {
    await Promise.all(ours.map((t) => t.close()));
    if (own) {
      await testbedDown(join(base, 'tb'));
      await rm(base, { recursive: true, force: true });
    }
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(`hack/bench-ssh: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
