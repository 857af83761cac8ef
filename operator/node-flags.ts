// The Node (V8) flags vc-manager runs with: its shebang gives them (test/operator/node-flags.test.ts
// keeps the two in step) and the harnesses that start it from the sources pass them.
//
// --max-semi-space-size=64 (MiB; V8's default grows the young generation's semi-spaces to 16 at
// most): a reconcile makes short-lived objects (decoded store objects, plans, status copies) at
// ~200 MB a second at 10,000 VMs, so with 16 MiB a scavenge ran several times a second and
// promoted objects still in use by an unfinished reconcile. hack/bench-scale 1000:10000
// --until-running, session 23: vc-manager 220.8 CPU s until all Running without it, 185.9 s with
// 64 (and 204.0 s with 128), peak RSS 692 and 816 MiB (the young generation is up to 3 x 64 MiB).

/** The flags, as node takes them before the script. */
export const VC_MANAGER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
