// Bundles bin/firecampd.ts and all it imports into dist/firecampd.cjs: one
// CommonJS file, as Node's single executable application support requires.
// Packages a node seldom needs go into chunks beside it (see `chunks`).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

/** The better-sqlite3 addon the bundle loads from its own directory (src/native.ts). */
export const sqliteAddon = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');

// yargs is ESM and reads import.meta.url, which a CommonJS bundle lacks.
const importMetaUrl = 'const __import_meta_url = require("url").pathToFileURL(__filename).href;';

const commonOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: false,
  legalComments: 'none',
  // Without comments and indentation the bundle is a third smaller and pure ASCII. V8 keeps a
  // script's whole source in memory, as two bytes a character once one character is not
  // Latin-1 (comments had some): that was 18 MiB of heap. Names stay as written.
  minifyWhitespace: true,
  logLevel: 'warning',
  define: {
    'import.meta.url': '__import_meta_url',
    __FIRECAMPD_VERSION__: JSON.stringify(pkg.version),
    __FIRECAMPD_BUNDLED__: 'true',
    // The addon's name in the single executable's cache (src/native.ts).
    __FIRECAMPD_SQLITE_DIGEST__: JSON.stringify(createHash('sha256').update(readFileSync(sqliteAddon)).digest('hex').slice(0, 16)),
  },
  // Optional native speed-ups that fall back to JavaScript when absent.
  external: ['bufferutil', 'utf-8-validate', 'cpu-features', './crypto/build/Release/sshcrypto.node'],
};

/**
 * Packages that an idle node never runs, each group bundled into a chunk of its
 * own, dist/chunks/<name>.cjs (in the single executable, an asset of that name),
 * which the bundle compiles the first time the group is needed (loadChunk in
 * src/native.ts). V8 keeps a script's whole source in memory and parses all of it
 * at start, and the memory its parser took stays with the process (malloc keeps
 * it): these packages are two thirds of the code (4.3 of 6.3 MiB), and a node
 * holds some 20 MiB less without them.
 *
 * `load: 'required'`: the chunk is loaded when one of its packages is required,
 * which the code does only when it uses it (the dynamic imports of the AWS
 * providers and of the service types' clients). `load: 'used'`: dockerode
 * requires these when it loads, but only an ssh:// Docker host (ssh2) or an
 * image build with BuildKit (grpc, protobufjs) uses them: the chunk is loaded
 * when one of their properties is first read.
 */
export const chunks = {
  aws: { load: 'required', packages: ['@aws-sdk/client-ec2', '@aws-sdk/client-route-53', '@aws-sdk/ec2-metadata-service'] },
  kafkajs: { load: 'required', packages: ['kafkajs'] },
  pg: { load: 'required', packages: ['pg'] },
  ioredis: { load: 'required', packages: ['ioredis'] },
  cassandra: { load: 'required', packages: ['cassandra-driver'] },
  ssh2: { load: 'used', packages: ['ssh2'] },
  buildkit: { load: 'used', packages: ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs'] },
};

const chunkOf = new Map(Object.entries(chunks).flatMap(([name, c]) => c.packages.map((p) => [p, name])));
const root = fileURLToPath(new URL('.', import.meta.url));
const nativeTs = fileURLToPath(new URL('./src/native.ts', import.meta.url));

/** The module that stands in the bundle for a package of a chunk. */
function standIn(name) {
  const chunk = chunkOf.get(name);
  const load = `require(${JSON.stringify(nativeTs)}).loadChunk(${JSON.stringify(chunk)})[${JSON.stringify(name)}]`;
  if (chunks[chunk].load === 'required') return `module.exports = ${load};`;
  // docker-modem reads ssh2's Client when it loads, and only constructs it.
  if (name === 'ssh2') return `module.exports = { Client: function Client(...args) { return new (${load}.Client)(...args); } };`;
  return `module.exports = new Proxy({}, { get: (_, key) => ${load}[key] });`;
}

const chunked = {
  name: 'chunked',
  setup(b) {
    const filter = new RegExp(`^(${[...chunkOf.keys()].map((p) => p.replace(/[/.-]/g, '\\$&')).join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'chunked' }));
    b.onLoad({ filter: /.*/, namespace: 'chunked' }, (args) => ({ contents: standIn(args.path), loader: 'js', resolveDir: root }));
  },
};

export const buildOptions = {
  ...commonOptions,
  entryPoints: ['bin/firecampd.ts'],
  outfile: 'dist/firecampd.cjs',
  banner: { js: `#!/usr/bin/env node\n${importMetaUrl}` },
  plugins: [chunked],
};

/** What the single executable carries besides the bundle: the SQLite addon and the chunks, by asset name. */
export const seaAssets = {
  'better_sqlite3.node': sqliteAddon,
  ...Object.fromEntries(Object.keys(chunks).map((name) => [`chunks/${name}.cjs`, `dist/chunks/${name}.cjs`])),
};

export async function buildBundle() {
  rmSync('dist/chunks', { recursive: true, force: true });
  await Promise.all([
    build(buildOptions),
    ...Object.entries(chunks).map(([name, { packages }]) =>
      build({
        ...commonOptions,
        // A chunk's exports: each of its packages by name.
        stdin: { contents: `module.exports = { ${packages.map((p) => `${JSON.stringify(p)}: require(${JSON.stringify(p)})`).join(', ')} };`, resolveDir: root },
        outfile: `dist/chunks/${name}.cjs`,
        banner: { js: importMetaUrl },
      }),
    ),
  ]);
  mkdirSync('dist', { recursive: true });
  copyFileSync(sqliteAddon, 'dist/better_sqlite3.node');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildBundle();
}
