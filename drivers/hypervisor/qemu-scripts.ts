// The fixed shell scripts QemuDriver runs on a node (`sh -c SCRIPT sh ARGS...`), and the parser of
// LIST_SCRIPT's output. Data reaches them only as positional parameters, never inside the script
// text. They use shell builtins where they can: a fork costs a few ms on a loaded node, and some of
// these run while a guest is paused.

import { nameArg } from './qemu-argv.js';
import type { DomainSpec } from './types.js';

/** One domain directory under runRoot as LIST_SCRIPT reports it (parseDomainList). */
export interface ProcEntry {
  name: string;
  /** Set only when the pid file's process is this domain's QEMU (its -name argument matches). */
  pid?: number;
  alive: boolean;
  spec?: DomainSpec;
}

/** alive PID: the process exists and is not a zombie (its state field, after the last ") ", is not Z). */
const ALIVE_FN = `alive() { st=; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=\${st##*) }; [ "\${st%% *}" != Z ]; }`;

/**
 * Per domain directory: D name, S spec JSON (one line), and for a live pid P pid + A argv lines.
 * A domain's directory holds its spec or its pid file (START_SCRIPT writes the spec before QEMU
 * starts): any other directory under runRoot (such as the NFS server's nfs/) is not a domain.
 */
export const LIST_SCRIPT = `${ALIVE_FN}
cd "$1" 2>/dev/null || exit 0
for d in *; do
  [ -d "$d" ] || continue
  [ -f "$d/domain.json" ] || [ -f "$d/qemu.pid" ] || continue
  if [ -n "$2" ] && [ "$d" != "$2" ]; then continue; fi
  printf 'D\\t%s\\n' "$d"
  [ -f "$d/domain.json" ] && printf 'S\\t%s\\n' "$(head -n 1 "$d/domain.json")"
  pid=$(tr -dc 0-9 < "$d/qemu.pid" 2>/dev/null)
  if [ -n "$pid" ] && alive "$pid"; then
    printf 'P\\t%s\\n' "$pid"
    tr '\\0' '\\n' < "/proc/$pid/cmdline" | sed 's/^/A\\t/'
  fi
done`;

/**
 * Starts QEMU unless this domain's QEMU already runs (exit 17, its pid on stdout): makes the run
 * directories, writes the spec (one line on stdin), links the console log, then execs the QEMU
 * argv. One round trip, which matters over SSH, and two forks: it is on the path of every start,
 * resume and migration. A stale pid file or socket needs no removal: QEMU rewrites the pid file
 * and replaces a socket path when it binds it; until then the pid fails the cmdline check.
 */
export const START_SCRIPT = `${ALIVE_FN}
pid=; read -r pid 2>/dev/null < "$3"; case $pid in *[!0-9]*) pid= ;; esac
if [ -n "$pid" ] && alive "$pid" && tr '\\0' '\\n' < "/proc/$pid/cmdline" | grep -qxF -e "$7"; then echo "$pid"; exit 17; fi
mkdir -p "$1" "$2" || exit 18
IFS= read -r spec || exit 18
printf '%s\\n' "$spec" > "$6.tmp" && mv -f "$6.tmp" "$6" || exit 18
if [ "$8" != "$1/console.log" ]; then ln -sfn "$8" "$1/console.log.link"; elif [ -L "$1/console.log.link" ]; then rm -f "$1/console.log.link"; fi
shift 8
exec "$@"`;

/** Ends a process: SIGTERM, up to 5 s, then SIGKILL; waits until it is gone (zombies count as gone). */
export const KILL_SCRIPT = `${ALIVE_FN}
kill -TERM "$1" 2>/dev/null
i=0; while alive "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
alive "$1" && kill -KILL "$1" 2>/dev/null
i=0; while alive "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
! alive "$1"`;

/** Waits until pid $1 is gone or $2 seconds have passed by the clock (a count of sleeps runs long on
 *  a loaded host); exit 0 when it is gone. */
export const WAIT_GONE_SCRIPT = `${ALIVE_FN}
end=$(( $(date +%s) + $2 ))
while alive "$1" && [ "$(date +%s)" -lt "$end" ]; do sleep 0.1; done
! alive "$1"`;

/**
 * Waits up to $2 steps of 10 ms for pid $1 (0: none) to end by itself, then SIGTERM, 3 s, SIGKILL;
 * once it is gone removes the paths $3... With $1 = "-" it first reads `retire PID` from stdin
 * and does nothing (exit 0) on any other line or on end of input: a migration starts it armed,
 * off its critical path, and releases it once the target runs.
 */
export const RETIRE_SCRIPT = `${ALIVE_FN}
pid=$1
if [ "$pid" = - ]; then read -r verdict pid || exit 0; [ "$verdict" = retire ] || exit 0; fi
case $pid in ''|*[!0-9]*) exit 2 ;; esac
i=0; while alive "$pid" && [ $i -lt "$2" ]; do sleep 0.01; i=$((i + 1)); done
alive "$pid" && kill -TERM "$pid" 2>/dev/null
i=0; while alive "$pid" && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done
alive "$pid" && kill -KILL "$pid" 2>/dev/null
i=0; while alive "$pid" && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done
alive "$pid" && exit 1
shift 2
rm -rf -- "$@"`;

/** The domains in LIST_SCRIPT's output; a pid counts only if that process is this domain's QEMU. */
export function parseDomainList(out: string): ProcEntry[] {
  const entries: ProcEntry[] = [];
  let cur: (ProcEntry & { args: string[] }) | undefined;
  const finish = (): void => {
    if (!cur) return;
    // The pid counts only if that process is this domain's QEMU.
    const i = cur.args.indexOf('-name');
    const mine = i >= 0 && cur.args[i + 1] === nameArg(cur.name);
    entries.push({ name: cur.name, pid: mine ? cur.pid : undefined, alive: mine && cur.alive, spec: cur.spec });
  };
  for (const line of out.split('\n')) {
    const tab = line.indexOf('\t');
    if (tab < 0) continue;
    const tag = line.slice(0, tab);
    const val = line.slice(tab + 1);
    if (tag === 'D') {
      finish();
      cur = { name: val, alive: false, args: [] };
    } else if (tag === 'P' && cur) {
      cur.pid = Number(val);
      cur.alive = true;
    } else if (tag === 'A' && cur) {
      cur.args.push(val);
    } else if (tag === 'S' && cur) {
      try {
        cur.spec = JSON.parse(val) as DomainSpec;
      } catch {
        // a spec file being rewritten: the entry is still listed, without spec details
      }
    }
  }
  finish();
  return entries;
}
