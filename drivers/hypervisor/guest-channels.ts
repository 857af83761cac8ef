// The two guest channels a QEMU domain offers besides its monitors (qemu-argv.ts), reached through
// the node's Transport:
// - the guest agent's virtio-serial port (a unix socket server on the node): pingAgent sends
//   `ping TOKEN` and waits for `pong TOKEN <node> <ip> <uptime>` (hack/guest/vc-agent);
// - the serial console (a unix socket server, one client at a time): attachConsole runs a small
//   relay on the node (socat, under a lock file naming the relay's shell), so that one attachment
//   is refused while another holds the lock, and `force` ends the holder (its relay, and with it
//   its connection to QEMU) before taking over.

import { randomBytes } from 'node:crypto';
import type { Transport } from '../transport/types.js';
import { ConsoleBusyError, HypervisorError, type ConsoleSession, type GuestAgentReply } from './types.js';

/** Exit codes of ATTACH_SCRIPT. */
const BUSY = 16;
const NO_SOCKET = 3;
const ATTACHED = 'vc-console-attached';

/**
 * $1 lock file, $2 directory of the console socket, $3 its file name (fixed, no user data), $4 1 to
 * force. Takes the lock (noclobber create, holding this shell's pid; a lock whose pid is gone is
 * stale), says ATTACHED on stderr, then relays stdin/stdout to the socket until either side ends.
 * TERM (a forced takeover, or the transport ending the process) ends the relay and frees the lock.
 */
const ATTACH_SCRIPT = `alive() { st=; read -r st 2>/dev/null < "/proc/$1/stat" || return 1; st=\${st##*) }; [ "\${st%% *}" != Z ]; }
lock=$1; dir=$2; sock=$3; force=$4
take() { ( set -C; echo $$ > "$lock" ) 2>/dev/null; }
if ! take; then
  old=; read -r old < "$lock" 2>/dev/null
  if [ -n "$old" ] && [ "$old" != $$ ] && alive "$old"; then
    if [ "$force" != 1 ]; then echo "the console is attached by another session (relay pid $old)" >&2; exit ${BUSY}; fi
    kill -TERM "$old" 2>/dev/null
    i=0; while alive "$old" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  rm -f "$lock"
  take || { echo "another session attached at the same moment" >&2; exit ${BUSY}; }
fi
r=
trap '[ -n "$r" ] && kill "$r" 2>/dev/null; rm -f "$lock"' EXIT
trap 'exit 0' TERM HUP INT
cd "$dir" 2>/dev/null && [ -S "$sock" ] || { echo "no console socket in $dir: the domain does not run on this node" >&2; exit ${NO_SOCKET}; }
command -v socat >/dev/null || { echo "socat is not installed on this node (apt-get install socat)" >&2; exit 127; }
echo ${ATTACHED} >&2
exec 3<&0
socat -t 0.2 - UNIX-CONNECT:"$sock" <&3 &
r=$!
wait "$r"`;

export function attachConsole(t: Transport, where: { lockFile: string; socket: string }, name: string, force: boolean): Promise<ConsoleSession> {
  const slash = where.socket.lastIndexOf('/');
  const proc = t.spawn(['sh', '-c', ATTACH_SCRIPT, 'sh', where.lockFile, where.socket.slice(0, slash), where.socket.slice(slash + 1), force ? '1' : '0'],
    { timeoutMs: 0 });
  return new Promise<ConsoleSession>((resolve, reject) => {
    let err = '';
    let attached = false;
    proc.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      if (!attached && err.includes(ATTACHED)) {
        attached = true;
        resolve({
          input: proc.stdin,
          output: proc.stdout,
          done: proc.done.then(() => undefined, () => undefined),
          close: () => {
            proc.stdin.end();
            proc.kill();
          },
        });
      }
    });
    proc.done.then(
      (r) => {
        if (attached) return;
        const why = err.trim() || `exit ${r.code}`;
        if (r.code === BUSY) reject(new ConsoleBusyError(`${t.host}: console of ${name}: ${why}; use --force to take it over`));
        else reject(new HypervisorError(`${t.host}: cannot attach to the console of ${name}: ${why}`));
      },
      (e: unknown) => {
        if (!attached) reject(new HypervisorError(`${t.host}: cannot attach to the console of ${name}: ${(e as Error).message}`, { cause: e }));
      },
    );
  });
}

/** One ping over the agent socket; undefined when nothing answers in time (or there is no socket). */
export async function pingAgent(t: Transport, socket: string, timeoutMs: number): Promise<GuestAgentReply | undefined> {
  let stream;
  try {
    stream = await t.connect({ unixSocket: socket });
  } catch {
    return undefined; // no socket: the domain is not running here (or not yet)
  }
  const token = randomBytes(6).toString('hex');
  try {
    return await new Promise<GuestAgentReply | undefined>((resolve) => {
      let buf = '';
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      const finish = (v: GuestAgentReply | undefined): void => {
        clearTimeout(timer);
        resolve(v);
      };
      stream.on('data', (b: Buffer) => {
        buf += b.toString('latin1');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          // Replies to earlier pings (written while no host listened) are skipped by their token.
          const m = /^pong (\S+) (\S+) (\S+) ([0-9.]+)$/.exec(line);
          if (m && m[1] === token) return finish({ node: m[2]!, ip: m[3]!, uptimeSeconds: Number(m[4]) });
        }
      });
      stream.on('error', () => finish(undefined));
      stream.on('close', () => finish(undefined));
      stream.write(`ping ${token}\n`);
    });
  } finally {
    stream.destroy();
  }
}
