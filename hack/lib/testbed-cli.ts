// hack/testbed up --nodes N --dir DIR | hack/testbed down --dir DIR   (API.md, "hack/testbed")
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { TestbedError, testbedDown, testbedUp } from './testbed.js';

const USAGE = [
  'usage: hack/testbed up --nodes N --dir DIR [--cores C] [--memory-mib M] [--max-vms V]',
  '                       [--full [--node-memory-mib M] [--node-cpus C] [--san-mib S] [--image-dir D]]',
  '       hack/testbed down --dir DIR',
  '       hack/testbed fail NODE [--partition] --dir DIR   (kill the node, or with --partition only cut its link)',
  '       hack/testbed heal NODE --dir DIR                 (link up, sshd started again)',
  '--full: each node a QEMU (TCG) machine booting Xen 4.17 with a Debian dom0 (image: hack/node-image)',
].join('\n');

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      nodes: { type: 'string' },
      dir: { type: 'string' },
      cores: { type: 'string' },
      'memory-mib': { type: 'string' },
      'max-vms': { type: 'string' },
      full: { type: 'boolean' },
      'node-memory-mib': { type: 'string' },
      'node-cpus': { type: 'string' },
      'san-mib': { type: 'string' },
      'image-dir': { type: 'string' },
      partition: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const verb = positionals[0];
  const fault = verb === 'fail' || verb === 'heal';
  if (values.help || !verb || positionals.length > (fault ? 2 : 1) || (fault && positionals.length < 2) || !values.dir) {
    process.stderr.write(USAGE + '\n');
    return values.help ? 0 : 2;
  }
  const dir = resolve(process.env.VC_CALLER_CWD ?? process.cwd(), values.dir);
  const int = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new TestbedError(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  if (verb === 'up') {
    const s = await testbedUp({
      dir,
      nodes: int('nodes', values.nodes) ?? 3,
      cores: int('cores', values.cores),
      memoryMiB: int('memory-mib', values['memory-mib']),
      maxVMs: int('max-vms', values['max-vms']),
      full: values.full
        ? {
            memoryMiB: int('node-memory-mib', values['node-memory-mib']),
            cpus: int('node-cpus', values['node-cpus']),
            sanMiB: int('san-mib', values['san-mib']),
            imageDir: values['image-dir'] ? resolve(process.env.VC_CALLER_CWD ?? process.cwd(), values['image-dir']) : undefined,
            log: (m: string) => process.stderr.write(`testbed: ${m}\n`),
          }
        : undefined,
    });
    for (const n of s.nodes) {
      const proc = n.full ? `qemu pid ${n.full.qemuPid}` : `sshd pid ${n.sshdPid}`;
      process.stdout.write(`${n.name}\t${n.netns}\t${n.address}:${n.port}\t${proc}\n`);
    }
    process.stdout.write(`wrote ${dir}/physicalnodes.yaml and ${dir}/nodes.json; shared SAN ${s.sanDir}; login key ${s.identityFile}\n`);
    return 0;
  }
  if (fault) {
    const { failNode, healNode } = await import('./testbed-faults.js');
    const msg = verb === 'fail' ? await failNode(dir, positionals[1]!, { partition: values.partition }) : await healNode(dir, positionals[1]!);
    process.stdout.write(msg + '\n');
    return 0;
  }
  if (verb === 'down') {
    await testbedDown(dir);
    process.stdout.write(`testbed in ${dir} removed\n`);
    return 0;
  }
  process.stderr.write(`hack/testbed: unknown command ${JSON.stringify(verb)}\n${USAGE}\n`);
  return 2;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`hack/testbed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
