// Where the better-sqlite3 native addon (and the bundle's chunks, at the end)
// come from, in each way firecampd runs:
// - from source (tsx): better-sqlite3 finds its own build in node_modules;
// - as the esbuild bundle (dist/firecampd.cjs): the build copies the addon
//   next to the bundle, and it is loaded from there;
// - as the single executable (Node SEA): there is no file at all; the addon
//   travels as a SEA asset, is written once to a cache directory named by its
//   digest, and is loaded from there with process.dlopen.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';

declare const __FIRECAMPD_BUNDLED__: boolean | undefined;
declare const __FIRECAMPD_SQLITE_DIGEST__: string | undefined;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);

interface SeaApi {
  isSea(): boolean;
  getAsset(key: string): ArrayBuffer;
  getAsset(key: string, encoding: 'utf8'): string;
}

let addon: object | null | undefined;

export function nativeSqliteAddon(): object | undefined {
  if (addon === undefined) addon = loadFromSea() ?? loadBesideBundle();
  return addon ?? undefined;
}

function loadBesideBundle(): object | null {
  if (typeof __FIRECAMPD_BUNDLED__ === 'undefined') return null;
  const file = path.join(path.dirname(process.argv[1] ?? ''), 'better_sqlite3.node');
  if (!fs.existsSync(file)) throw new Error(`the SQLite addon is missing: expected ${file} next to the bundle`);
  return dlopen(file);
}

function dlopen(file: string): object {
  const mod = { exports: {} as object };
  process.dlopen(mod, file);
  return mod.exports;
}

function seaApi(): SeaApi | null {
  try {
    const sea = createRequire(import.meta.url)('node:sea') as SeaApi;
    return sea.isSea() ? sea : null;
  } catch {
    return null; // node:sea appeared in Node 20.12; older runtimes are never a SEA
  }
}

/** How to run this same program again in a child process: the single binary, the bundle or the source. */
export function selfCommand(): string[] {
  return seaApi() ? [process.execPath] : [process.execPath, ...process.execArgv, process.argv[1]];
}

function loadFromSea(): object | null {
  const sea = seaApi();
  if (!sea) return null;
  // The build names the addon by its digest, so that a start which finds it cached need not read the asset (2 MiB).
  const digest = typeof __FIRECAMPD_SQLITE_DIGEST__ === 'string' ? __FIRECAMPD_SQLITE_DIGEST__ : sha256(Buffer.from(sea.getAsset('better_sqlite3.node')));
  const dir = path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'firecampd', digest);
  const file = path.join(dir, 'better_sqlite3.node');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Write then rename, so a concurrent start never loads a half-written file.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, Buffer.from(sea.getAsset('better_sqlite3.node')), { mode: 0o500 });
    fs.renameSync(tmp, file);
  }
  return dlopen(file);
}

const chunks = new Map<string, Record<string, unknown>>();

/**
 * A chunk of the bundle: packages that esbuild.config.mjs bundles apart because
 * an idle node never runs them, compiled the first time one is required. The
 * bundle reads it from chunks/<name>.cjs beside itself, the single executable
 * from its asset of that name. Only the bundle calls this; from source the
 * packages come from node_modules.
 */
export function loadChunk(name: string): Record<string, unknown> {
  let exports = chunks.get(name);
  if (!exports) {
    const sea = seaApi();
    const file = `chunks/${name}.cjs`;
    if (sea) {
      const filename = path.join(path.dirname(process.execPath), file);
      const module = { exports: {} as Record<string, unknown> };
      const run = vm.compileFunction(sea.getAsset(file, 'utf8'), ['exports', 'require', 'module', '__filename', '__dirname'], {
        filename,
        // The AWS SDK imports some of Node's modules with import().
        importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      }) as (...args: unknown[]) => void;
      run(module.exports, createRequire(filename), module, filename, path.dirname(filename));
      exports = module.exports;
    } else {
      exports = createRequire(import.meta.url)(`./${file}`) as Record<string, unknown>;
    }
    chunks.set(name, exports);
  }
  return exports;
}
