// The second step of `npm run build` (after tsc): bundles vcctl with esbuild into dist/cli/vcctl.js
// (the same file the npm bin and every README command run) plus dist/cli/chunks/, so a fresh
// `vcctl apply` does not resolve and load ~300 separate modules. Commands stay lazily loaded
// (each is its own chunk). Three things differ from the plain tsc output, all for start-up time:
//   - api/validation/precompiled.ts becomes ajv standalone code of every kind's CRD schema
//     (no ajv compilation at run time; a CRD changed after the build is compiled as before).
//   - etcd3 gets its gRPC service definitions from JSON prepared at build time instead of parsing
//     rpc.proto at each start (cli/bundle/etcd-package-definition.ts).
//   - Native and platform-specific packages (ssh2, better-sqlite3, cpu-features) stay external.
// Everything else under dist/ (vc-manager, the dashboard, tests) is tsc's output, unbundled.
//
// Run: node --import tsx hack/build-cli.ts [--outdir DIR]   (npm run build does; DIR defaults to
// dist/cli; test/cli/bundle.test.ts builds into a directory of its own under dist/)

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { precompiledModuleSource } from '../api/validation/schema-validator.js';
import { etcdProtoSpecs } from '../cli/bundle/etcd-package-definition.js';

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

rmSync(chunks, { recursive: true, force: true });
await build({
  entryPoints: { vcctl: join(root, 'cli', 'vcctl.ts') },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: true,
  minify: true,
  keepNames: true,
  external: ['ssh2', 'better-sqlite3', 'cpu-features'],
  // CommonJS packages in an ES module bundle call require() (protobufjs even through eval).
  banner: { js: "import { createRequire as __vlCreateRequire } from 'node:module'; const require = __vlCreateRequire(import.meta.url);" },
  plugins: [precompiledValidators, etcd3Proto],
  logLevel: 'warning',
});
