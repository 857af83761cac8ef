#!/usr/bin/env node
// vcctl: the command-line client, in kubectl's habits. This file loads only the command registry;
// the command named on the command line is imported when it runs, so `vcctl version` starts in
// a few tens of milliseconds and nothing loads etcd, SQLite, ajv or YAML unless it needs to.

import type { Command, CommandContext } from './command.js';
import { COMMANDS } from './commands/registry.js';

const GLOBAL_WITH_VALUE = new Set(['--store', '-n', '--namespace']);
const GLOBAL_BOOLEAN = new Set(['-A', '--all-namespaces']);

function helpText(): string {
  const names = Object.keys(COMMANDS).sort();
  const width = Math.max(...names.map((n) => n.length));
  return [
    'vcctl controls VirtuaLinux virtual clusters.',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].summary}`),
    '',
    'Global flags:',
    '  --store URL            etcd://HOST:PORT[,HOST:PORT...] or file:PATH (default: $VCCTL_STORE,',
    '                         else the embedded store in ~/.local/share/virtualinux/store.db)',
    '  -n, --namespace NS     the namespace (default "default")',
    '  -A, --all-namespaces   every namespace (get, events)',
    '',
    'Use "vcctl <command> --help" for more about a command.',
  ].join('\n');
}

/** Runs vcctl with the arguments after the program name. Returns the exit code. */
export async function main(argv: string[], ctx: CommandContext): Promise<number> {
  // Global flags may come before the command name: move them after it.
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i].startsWith('-')) {
    const a = argv[i];
    const flag = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (GLOBAL_BOOLEAN.has(flag)) leading.push(argv[i++]);
    else if (GLOBAL_WITH_VALUE.has(flag) && a.includes('=')) leading.push(argv[i++]);
    else if (GLOBAL_WITH_VALUE.has(flag)) leading.push(argv[i++], argv[i++] ?? '');
    else if (flag === '-h' || flag === '--help' || flag === '--version') break;
    else {
      ctx.stderr.write(`error: unknown flag "${a}" before the command\n${helpText()}\n`);
      return 2;
    }
  }
  const name = argv[i];
  const rest = [...argv.slice(i + 1), ...leading];
  if (name === undefined || name === 'help' || name === '-h' || name === '--help') {
    const topic = name === 'help' ? rest[0] : undefined;
    if (topic && COMMANDS[topic]) {
      ctx.stdout.write(`${(await COMMANDS[topic].load()).default.usage}\n`);
      return 0;
    }
    ctx.stdout.write(`${helpText()}\n`);
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name === '--version' ? 'version' : name];
  if (!entry) {
    ctx.stderr.write(`error: unknown command "${name}" for "vcctl"\nRun "vcctl help" for the list of commands.\n`);
    return 2;
  }
  let cmd: Command;
  try {
    cmd = (await entry.load()).default;
  } catch (err) {
    ctx.stderr.write(`error: cannot load the ${name} command: ${(err as Error).message}\n`);
    return 1;
  }
  if (rest.includes('-h') || rest.includes('--help')) {
    ctx.stdout.write(`${cmd.usage}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest, ctx);
  } catch (err) {
    const { printError } = await import('./errors.js');
    printError(err, ctx.stderr, ctx.env, `See "vcctl ${name} --help".`);
    const { UsageError } = await import('./args.js');
    return err instanceof UsageError ? 2 : 1;
  }
}

// Run when executed directly (node dist/cli/vcctl.js, the npm bin, or tsx), not when imported.
const invokedAs = process.argv[1] ?? '';
if (/(^|[\\/])vcctl(\.[cm]?[jt]s)?$/.test(invokedAs)) {
  main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }).then(
    (code) => {
      process.exitCode = code;
      exitSoon();
    },
    (err: unknown) => {
      process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
      process.exitCode = 1;
      exitSoon();
    },
  );
}

/**
 * The command is done: a connection attempt still open to an etcd member that hangs (SIGSTOP, cut
 * off) must not keep the process alive after its answer. Output to a pipe or file is written
 * synchronously on Linux, so nothing is lost.
 */
function exitSoon(): void {
  setTimeout(() => process.exit(), 200).unref();
}
