// Bundles bin/firecampd.ts and all it imports into dist/firecampd.cjs: one
// CommonJS file, as Node's single executable application support requires.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

export const buildOptions = {
  entryPoints: ['bin/firecampd.ts'],
  outfile: 'dist/firecampd.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  // yargs is ESM and reads import.meta.url, which a CommonJS bundle lacks.
  banner: { js: '#!/usr/bin/env node\nconst __import_meta_url = require("url").pathToFileURL(__filename).href;' },
  define: {
    'import.meta.url': '__import_meta_url',
    __FIRECAMPD_VERSION__: JSON.stringify(pkg.version),
    __FIRECAMPD_BUNDLED__: 'true',
  },
  // Optional native speed-ups that fall back to JavaScript when absent.
  external: ['bufferutil', 'utf-8-validate', 'cpu-features', './crypto/build/Release/sshcrypto.node'],
};

/** The better-sqlite3 addon the bundle loads from its own directory (src/native.ts). */
export const sqliteAddon = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');

export async function buildBundle() {
  await build(buildOptions);
  mkdirSync('dist', { recursive: true });
  copyFileSync(sqliteAddon, 'dist/better_sqlite3.node');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await buildBundle();
}
