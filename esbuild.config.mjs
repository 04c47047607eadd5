// Bundles bin/firecampd.ts and all it imports into dist/firecampd.cjs: one
// CommonJS file, as Node's single executable application support requires.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

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
  },
  // Optional native speed-ups that fall back to JavaScript when absent.
  external: ['bufferutil', 'utf-8-validate', 'cpu-features', './crypto/build/Release/sshcrypto.node'],
};

if (import.meta.url === `file://${process.argv[1]}`) {
  await build(buildOptions);
}
