// vcctl version: loads nothing but node:fs (it is the start-up time benchmark's subject).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, UsageError } from '../args.js';
import type { Command } from '../command.js';

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'virtualinux') return pkg.version ?? 'unknown';
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

const command: Command = {
  summary: 'Print the version',
  usage: 'Usage: vcctl version\n\nPrints the vcctl version and the Node.js version it runs on.',
  async run(argv, ctx) {
    if (parseArgs(argv, {}).positionals.length > 0) throw new UsageError('vcctl version takes no arguments');
    ctx.stdout.write(`vcctl version ${packageVersion()} (node ${process.version})\n`);
    return 0;
  },
};
export default command;
