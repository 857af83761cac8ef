// VL_TRACE_EXEC=FILE: one JSON line per command a node ran over SSH, appended to FILE when it ends
// ({t: start ms, ms: duration, host, argv: each element cut to 60 characters}), from vc-manager,
// vcctl and tests alike. For finding what loads a node (on a full test node, a Xen dom0 under
// TCG, every command costs: session 18 found a Stopped VM's polling and three sessions per domain
// list this way). Off unless set; never for production use (argv may hold paths and names).

import { appendFileSync } from 'node:fs';

/** Appends `argv`'s line to VL_TRACE_EXEC when `done` settles; nothing when it is unset. */
export function traceExec<T>(host: string, argv: readonly string[], done: Promise<T>): Promise<T> {
  const file = process.env.VL_TRACE_EXEC;
  if (!file) return done;
  const t = Date.now();
  const write = () => {
    try {
      appendFileSync(file, `${JSON.stringify({ t, ms: Date.now() - t, host, argv: argv.map((a) => a.slice(0, 60)) })}\n`);
    } catch {
      // a trace that cannot be written is not the command's failure
    }
  };
  done.then(write, write);
  return done;
}
