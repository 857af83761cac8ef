// A target's migration forced command that strands a Xen live migration at xl's point of no
// return, for the tests that check it is settled (xen-driver.full: the driver; the e2e
// xen-stranded.full-long: the migration controller under a killed manager).

/**
 * xl migrate-receive, but its "ready" (the whole domain arrived) is held until it has been
 * SIGKILLed, so the source's xl passes its point of no return (renames its copy
 * <name>--migratedaway) with nobody to hand over to. `keep`: the receiver's complete incoming copy
 * stays paused as `<name>--incoming`. `destroy`: that copy is destroyed too (a target that lost
 * it), and the channel is then held open until the source's side ends it (xl on the source waits
 * for the target's report until it is killed; its ssh then closes the stream). `hold`: the "ready"
 * is never sent (xl on the source, its copy suspended and not renamed, waits until it is killed).
 * Its files: /tmp/vl-ready, /tmp/vl-recv.pid, /tmp/vl-recv.held (hold).
 */
export function strandingReceiver(mode: 'keep' | 'destroy' | 'hold', name: string): string {
  return `#!/bin/sh
exec 4<&0
f=/tmp/vl-recv.fifo; rm -f "$f"; mkfifo "$f"
xl migrate-receive <&4 > "$f" &
pid=$!
exec 3< "$f"; rm -f "$f"
dd bs=1 count=54 <&3 2>/dev/null
dd bs=1 count=34 of=/tmp/vl-ready <&3 2>/dev/null
kill -9 $pid
${mode === 'keep' ? 'cat /tmp/vl-ready' : `${mode === 'destroy' ? `xl destroy ${name}--incoming` : 'touch /tmp/vl-recv.held'}
echo $$ > /tmp/vl-recv.pid
${mode === 'destroy' ? 'cat /tmp/vl-ready' : ''}
exec cat > /dev/null`}
`;
}
