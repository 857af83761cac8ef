// The second step of `npm run build` (after tsc): bundles vcctl with esbuild into
// dist/cli/vcctl.cjs (the whole program, one CommonJS file) and dist/cli/vcctl.js (the entry the
// npm bin and every README command run: cli/bundle/launcher.ts, which runs vcctl.cjs with V8's
// code cache in dist/cli/v8-cache/), so a fresh `vcctl apply` neither resolves and loads ~300
// separate modules nor compiles the same code again at every start. Commands stay lazily
// evaluated. Four things differ from the plain tsc output, all for start-up time:
//   - api/validation/precompiled.ts becomes ajv standalone code of every kind's CRD schema
//     (no ajv compilation at run time; a CRD changed after the build is compiled as before).
//   - etcd3 gets its gRPC service definitions from JSON prepared at build time instead of parsing
//     rpc.proto at each start (cli/bundle/etcd-package-definition.ts).
//   - Native and platform-specific packages (ssh2, better-sqlite3, cpu-features) stay external.
//   - The code cache (see the launcher).
// Everything else under dist/ (vc-manager, the dashboard, tests) is tsc's output, unbundled.
//
// Run: node --import tsx hack/build-cli.ts [--outdir DIR]   (npm run build does; DIR defaults to
// dist/cli; test/cli/bundle.test.ts builds into a directory of its own under dist/)

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { precompiledModuleSource } from '../api/validation/schema-validator.js';
import { etcdProtoSpecs } from '../cli/bundle/etcd-package-definition.js';
import { COMMANDS } from '../cli/commands/registry.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--outdir');
const outdir = outArg > 0 ? resolve(process.argv[outArg + 1]) : join(root, 'dist', 'cli');
const chunks = join(outdir, 'chunks');

/** api/validation/precompiled.ts -> the generated validators. */
const precompiledValidators: Plugin = {
  name: 'precompiled-validators',
  setup(b) {
    b.onLoad({ filter: /[\\/]api[\\/]validation[\\/]precompiled\.ts$/ }, (args) => ({
      contents: precompiledModuleSource((spec) => (spec.startsWith('/') && !existsSync(spec) ? spec.replace(/\.js$/, '.ts') : spec)),
      loader: 'js',
      resolveDir: dirname(args.path),
    }));
  },
};

/**
 * etcd3 runs proto-loader's loadSync(`${__dirname}/../proto/rpc.proto`, options) when loaded: give
 * it cli/bundle/etcd-package-definition.ts's loader with the proto's JSON and method table taken
 * from proto-loader at build time (and no __dirname, which an ES module bundle lacks).
 */
const etcd3Proto: Plugin = {
  name: 'etcd3-proto',
  setup(b) {
    b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, async (args) => {
      const requireLine = 'const proto_loader_1 = require("@grpc/proto-loader");';
      const pathArg = '`${__dirname}/../proto/rpc.proto`';
      const src = readFileSync(args.path, 'utf8');
      if (!src.includes(requireLine) || !src.includes(pathArg)) {
        throw new Error(`${args.path}: etcd3 no longer loads its proto as hack/build-cli.ts expects; update the plugin`);
      }
      const protoFile = join(dirname(args.path), '..', 'proto', 'rpc.proto');
      const options = etcdLoadOptions(src);
      const { json, services } = await etcdProtoSpecs(protoFile, options);
      const loader = `const proto_loader_1 = { loadSync: (_file, options) => require(${JSON.stringify(join(root, 'cli', 'bundle', 'etcd-package-definition.ts'))})` +
        `.etcdPackageDefinition(${JSON.stringify(json)}, ${JSON.stringify(services)}, options) };`;
      return { contents: src.replace(requireLine, loader).replace(pathArg, JSON.stringify('etcd3/proto/rpc.proto')), loader: 'js' };
    });
  },
};

/** The options object etcd3 passes to loadSync (keepCase, longs: String, ...), read from its source. */
function etcdLoadOptions(src: string): Record<string, unknown> {
  const m = /loadSync\)\(`\$\{__dirname\}\/\.\.\/proto\/rpc\.proto`, (\{[^}]*\})\)/.exec(src);
  if (!m) throw new Error('etcd3 connection-pool.js: cannot find the loadSync options');
  const options = new Function('String', 'Number', `return (${m[1]});`)(String, Number) as Record<string, unknown>;
  const known = ['keepCase', 'longs', 'enums', 'defaults', 'oneofs'];
  if (Object.keys(options).some((k) => !known.includes(k))) throw new Error(`etcd3 loadSync options changed: ${m[1]}`);
  return options;
}

// Leftovers of earlier builds: the ES module chunks of the split bundle, code caches of another build.
for (const d of [chunks, join(outdir, 'v8-cache')]) rmSync(d, { recursive: true, force: true });
const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  minify: true,
  keepNames: true,
  logLevel: 'warning',
  charset: 'ascii',
} as const;
// The program: one CommonJS file (V8's code cache, which the launcher uses, takes scripts, not
// ES modules). Commands are still evaluated only when they run (esbuild wraps what is imported
// dynamically in a lazy initializer). "use strict" as the ES modules were.
await build({
  ...common,
  entryPoints: [join(root, 'cli', 'vcctl.ts')],
  format: 'cjs',
  outfile: join(outdir, 'vcctl.cjs'),
  external: ['ssh2', 'better-sqlite3', 'cpu-features'],
  define: { 'import.meta.url': '__vlImportMetaUrl' },
  banner: { js: '"use strict";const __vlImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [precompiledValidators, etcd3Proto],
});
// The launcher runs it inside a function: the #! line (kept by esbuild) becomes a comment there.
// It reads the file as latin1, which is right only for ASCII (esbuild escapes everything else).
const program = join(outdir, 'vcctl.cjs');
const programText = readFileSync(program, 'utf8');
if (/[^\x00-\x7f]/.test(programText)) throw new Error(`${program}: not ASCII; the launcher reads it as latin1`);
writeFileSync(program, programText.replace(/^#!/, '//'));
// The entry (dist/cli/vcctl.js, what the npm bin and README commands run): cli/bundle/launcher.ts.
await build({
  ...common,
  entryPoints: [join(root, 'cli', 'bundle', 'launcher.ts')],
  format: 'esm',
  outfile: join(outdir, 'vcctl.js'),
  banner: { js: '#!/usr/bin/env node' },
  define: {
    __VL_BUNDLE_SHA256: JSON.stringify(createHash('sha256').update(readFileSync(program)).digest('hex')),
    __VL_COMMANDS: JSON.stringify(Object.keys(COMMANDS)),
  },
});
