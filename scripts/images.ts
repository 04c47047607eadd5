// npm run images: stand-ins for the images firecampd's service types default
// to, built from this machine's Debian packages and `docker import`ed into a
// Docker engine, so that nothing needs a registry. Each is busybox with its
// applets plus what the type's recipe lists (src/catalog/services/<type>/image.ts,
// an ImageRecipe of scripts/image-recipe.ts): programs and directory trees at
// the same paths as here, every shared library ldd names for them, jars from
// Maven Central (for the JVM images), users, directories, files and ENV. The
// test bed loads the same images into each node's dockerd.
//
// An image carries the label firecampd.recipe: a hash of its recipe, of the
// versions of the Debian packages it comes from (and everything they depend
// on), of the names of the jars Maven resolved for it, and of this builder. An
// engine that already has the image with that label is left alone, so a
// second run imports nothing.
//
// Maven (mvn, Debian's maven) resolves a recipe's artifacts with their runtime
// dependencies into its own cache (~/.m2); the list of jars it found is kept
// in $XDG_CACHE_HOME/firecampd-images/maven/<hash of the artifacts>/ (default
// ~/.cache), so that a later run asks Maven nothing while those jars are there.
//
//   npm run images [-- --docker-host unix:///var/run/docker.sock] [--only IMAGE,IMAGE…] [--json]
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { typeNames } from '../src/catalog/registry.ts';
import { JMX_EXPORTER_JAR } from '../src/catalog/jmx-exporter.ts';
import { JavaAgents } from '../src/agent/java-agents.ts';
import type { ImageRecipe } from './image-recipe.ts';

export type { ImageRecipe } from './image-recipe.ts';

export const BUSYBOX_IMAGE = 'firecampd/busybox:1';
/** Each type folder's recipes: its stand-in, and its metrics exporter's where it has one (`exporter` beside `image`). */
const TYPE_RECIPES: readonly { image: ImageRecipe; exporter?: ImageRecipe }[] = await Promise.all(
  typeNames()
    .filter((name) => fs.existsSync(fileURLToPath(new URL(`../src/catalog/services/${name}/image.ts`, import.meta.url))))
    .map(async (name) => (await import(`../src/catalog/services/${name}/image.ts`)) as { image: ImageRecipe; exporter?: ImageRecipe }),
);

/**
 * Every image `npm run images` builds, in order: busybox, then each type's stand-in, from the image.ts of its folder
 * (a type that runs another's image, as Kafka Connect runs Kafka's, has none of its own), followed by its metrics
 * exporter's where it has one.
 */
export const RECIPES: readonly ImageRecipe[] = [
  { image: BUSYBOX_IMAGE, packages: [] },
  ...TYPE_RECIPES.flatMap((r) => [r.image, ...(r.exporter ? [r.exporter] : [])]),
];

/** The images named, and with each type's image its exporter's (the members of that type run both). */
export function withExporters(images: readonly string[]): string[] {
  const exporters = TYPE_RECIPES.flatMap((r) => (r.exporter && images.includes(r.image.image) ? [r.exporter.image] : []));
  return [...new Set([...images, ...exporters])];
}

/** The recipes of the named images (by recipe.image), in RECIPES' order; every recipe when no names are given. */
export function selectRecipes(images?: readonly string[]): readonly ImageRecipe[] {
  if (images === undefined) return RECIPES;
  const unknown = images.filter((name) => !RECIPES.some((r) => r.image === name));
  if (unknown.length > 0) {
    throw new Error(`no image recipe named ${unknown.join(', ')} (there are: ${RECIPES.map((r) => r.image).join(', ')})`);
  }
  return RECIPES.filter((r) => images.includes(r.image));
}

const BASE_PACKAGES = ['busybox-static'];
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const LABEL = 'firecampd.recipe';
/** The tools the builder runs, and the Debian package of each. */
const TOOLS: Record<string, string> = { busybox: 'busybox-static', ldd: 'libc-bin', tar: 'tar', docker: 'docker.io', 'dpkg-query': 'dpkg' };
/** What a recipe with Maven artifacts needs besides. */
const MAVEN_TOOLS: Record<string, string> = { mvn: 'maven' };
/** The plugin that lists the jars, pinned so that Maven's default (an old one) does not decide. */
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';

const which = (prog: string): string | undefined => {
  try {
    return execFileSync('sh', ['-c', `command -v ${prog}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || undefined;
  } catch {
    return undefined;
  }
};

interface DebPackage {
  version: string;
  installed: boolean;
  depends: string[];
}

let dpkgCache: Map<string, DebPackage> | undefined;

/** Every package dpkg knows: version, whether installed, and the names it depends on (all alternatives). */
function dpkg(): Map<string, DebPackage> {
  if (dpkgCache) return dpkgCache;
  const out = execFileSync('dpkg-query', ['-W', '-f', '${Package}\t${Version}\t${db:Status-Status}\t${Pre-Depends}, ${Depends}\n'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  dpkgCache = new Map();
  for (const line of out.split('\n')) {
    const [name, version, status, deps] = line.split('\t');
    if (!name || (dpkgCache.get(name)?.installed && status !== 'installed')) continue;
    const depends = (deps ?? '')
      .split(/[,|]/)
      .map((d) => d.trim().split(/[\s:(]/)[0])
      .filter(Boolean);
    dpkgCache.set(name, { version, installed: status === 'installed', depends });
  }
  return dpkgCache;
}

const packagesOf = (recipe: ImageRecipe): string[] => [...new Set([...BASE_PACKAGES, ...recipe.packages])];

/** The upstream part of a Debian version: 5:7.0.15-1~deb12u10 → 7.0.15. */
const upstreamVersion = (debian: string): string => debian.replace(/^\d+:/, '').replace(/-[^-]*$/, '');

/** The names an image is imported under: its name, its tags, its version tag. */
export function imageNames(recipe: ImageRecipe): string[] {
  const names = [recipe.image, ...(recipe.tags ?? [])];
  if (recipe.versionTag) {
    const pkg = dpkg().get(recipe.versionTag.package);
    if (!pkg?.installed) throw new Error(`${recipe.image}: Debian package ${recipe.versionTag.package} is not installed`);
    names.push(`${recipe.versionTag.repository}:${upstreamVersion(pkg.version)}`);
  }
  return [...new Set(names)];
}

/**
 * Throws, naming the Debian packages to install, when something the named images (every one unless given)
 * need is missing here.
 */
export function requireImageTools(images?: readonly string[]): void {
  const recipes = selectRecipes(images);
  const needed: Record<string, string> = { ...TOOLS, ...(recipes.some((r) => r.maven?.length) ? MAVEN_TOOLS : {}) };
  const tools = Object.keys(needed).filter((t) => !which(t));
  if (tools.includes('dpkg-query')) throw new Error("building firecampd's images needs a Debian machine (dpkg-query is missing)");
  const installed = dpkg();
  const wanted = [...new Set([...tools.map((t) => needed[t]), ...recipes.flatMap(packagesOf)])];
  const missing = wanted.filter((p) => !installed.get(p)?.installed);
  if (tools.length > 0 || missing.length > 0) {
    const what = [...tools, ...missing.filter((p) => !tools.some((t) => needed[t] === p))];
    const install = [...new Set([...tools.map((t) => needed[t]), ...missing])];
    throw new Error(`building firecampd's images needs ${what.join(', ')}: apt-get install --no-install-recommends ${install.join(' ')}`);
  }
}

const mavenCacheDir = (): string => path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'firecampd-images', 'maven');

/** The terminal's colour codes, which Debian's Maven prints even in batch mode. */
const ANSI_ESCAPE = new RegExp(`${String.fromCharCode(27)}\\[[\\d;]*m`, 'g');

/** Jars resolved in this process: artifacts (as JSON) → their absolute paths. */
const resolved = new Map<string, string[]>();

/**
 * The jars of these Maven artifacts and of their runtime dependencies (less the `group:artifact`s of
 * `exclude` and what they bring), as absolute paths (in Maven's own cache, ~/.m2). Maven runs on a small
 * pom.xml in the cache dir unless the list it gave last time is there and its jars still are.
 */
export function resolveMaven(artifacts: readonly string[], exclude: readonly string[] = []): string[] {
  // A list without exclusions keeps the key (and cache dir) it had before there were any.
  const key = JSON.stringify(exclude.length > 0 ? { artifacts, exclude } : artifacts);
  const made = resolved.get(key);
  if (made) return made;
  const dir = path.join(mavenCacheDir(), crypto.createHash('sha256').update(key).digest('hex').slice(0, 16));
  const listFile = path.join(dir, 'jars.json');
  try {
    const cached = JSON.parse(fs.readFileSync(listFile, 'utf8')) as { artifacts: string[]; exclude?: string[]; jars: string[] };
    const cachedKey = JSON.stringify(cached.exclude?.length ? { artifacts: cached.artifacts, exclude: cached.exclude } : cached.artifacts);
    if (cachedKey === key && cached.jars.length > 0 && cached.jars.every((j) => fs.existsSync(j))) {
      resolved.set(key, cached.jars);
      return cached.jars;
    }
  } catch {
    /* not resolved yet */
  }
  const exclusions = exclude.map((coords) => {
    const [groupId, artifactId, ...rest] = coords.split(':');
    if (!groupId || !artifactId || rest.length > 0 || !/^[\w.*:-]+$/.test(coords)) throw new Error(`Maven exclusions are group:artifact, not ${coords}`);
    return `<exclusion><groupId>${groupId}</groupId><artifactId>${artifactId}</artifactId></exclusion>`;
  });
  const excluded = exclusions.length > 0 ? `<exclusions>${exclusions.join('')}</exclusions>` : '';
  const deps = artifacts.map((coords) => {
    const [groupId, artifactId, version, classifier, ...rest] = coords.split(':');
    if (!groupId || !artifactId || !version || rest.length > 0 || !/^[\w.:-]+$/.test(coords)) {
      throw new Error(`Maven coordinates are group:artifact:version[:classifier], not ${coords}`);
    }
    const parts = { groupId, artifactId, version, ...(classifier ? { classifier } : {}) };
    const xml = Object.entries(parts).map(([k, v]) => `<${k}>${v}</${k}>`);
    return `    <dependency>${xml.join('')}${excluded}</dependency>`;
  });
  fs.mkdirSync(dir, { recursive: true });
  const pom = [
    '<project xmlns="http://maven.apache.org/POM/4.0.0">',
    '  <modelVersion>4.0.0</modelVersion>',
    '  <groupId>local.firecampd.images</groupId>',
    '  <artifactId>image</artifactId>',
    '  <version>0</version>',
    '  <packaging>pom</packaging>',
    '  <dependencies>',
    ...deps,
    '  </dependencies>',
    '</project>',
    '',
  ].join('\n');
  const pomFile = path.join(dir, 'pom.xml');
  fs.writeFileSync(pomFile, pom);
  const classpath = path.join(dir, 'classpath.txt');
  fs.rmSync(classpath, { force: true });
  const args = ['-q', '-B', '-f', pomFile, `${DEPENDENCY_PLUGIN}:build-classpath`, '-DincludeScope=runtime', `-Dmdep.outputFile=${classpath}`];
  const r = spawnSync('mvn', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`mvn: ${r.error.message} (apt-get install --no-install-recommends maven)`);
  if (r.status !== 0 || !fs.existsSync(classpath)) {
    const output = `${r.stdout}${r.stderr}`.replace(ANSI_ESCAPE, '').trim();
    throw new Error(`mvn could not resolve ${artifacts.join(' ')} (in ${dir}):\n${output}`);
  }
  const jars = fs.readFileSync(classpath, 'utf8').trim().split(path.delimiter).filter(Boolean);
  const missing = jars.filter((j) => !fs.existsSync(j));
  if (jars.length === 0 || missing.length > 0) throw new Error(`mvn listed jars that are not there: ${missing.join(' ') || '(none listed)'}`);
  fs.writeFileSync(listFile, JSON.stringify({ artifacts, ...(exclude.length > 0 ? { exclude } : {}), jars }, null, 2) + '\n');
  resolved.set(key, jars);
  return jars;
}

/** Each Maven entry of the recipe: its directory in the image and the jars that go there. */
function mavenJars(recipe: ImageRecipe): { dir: string; jars: string[] }[] {
  return (recipe.maven ?? []).map((m) => {
    const jars = resolveMaven(m.artifacts, m.exclude);
    const names = jars.map((j) => path.basename(j));
    const twice = names.filter((n, i) => names.indexOf(n) !== i);
    if (twice.length > 0) throw new Error(`${recipe.image}: two jars of ${m.dir} have the same name: ${[...new Set(twice)].join(', ')}`);
    return { dir: m.dir, jars };
  });
}

let builderHash: string | undefined;
const recipeHashes = new Map<ImageRecipe, string>();

/**
 * What the image is made of: the recipe, the versions of its packages and of all they depend on, the names
 * of the jars Maven resolved for it, and this builder.
 */
export function recipeHash(recipe: ImageRecipe): string {
  const made = recipeHashes.get(recipe);
  if (made) return made;
  builderHash ??= crypto
    .createHash('sha256')
    .update(fs.readFileSync(fileURLToPath(import.meta.url)))
    .update(fs.readFileSync(fileURLToPath(new URL('./image-recipe.ts', import.meta.url))))
    .digest('hex');
  const all = dpkg();
  const versions: Record<string, string> = {};
  const queue = packagesOf(recipe);
  while (queue.length > 0) {
    const name = queue.shift()!;
    const pkg = all.get(name);
    if (name in versions || !pkg?.installed) continue;
    versions[name] = pkg.version;
    queue.push(...pkg.depends);
  }
  const sorted = Object.fromEntries(Object.entries(versions).sort(([a], [b]) => a.localeCompare(b)));
  const jars = mavenJars(recipe).map((m) => ({ dir: m.dir, jars: m.jars.map((j) => path.basename(j)) }));
  const parts = { recipe, names: imageNames(recipe), packages: sorted, builder: builderHash, arch: process.arch, ...(jars.length > 0 ? { jars } : {}) };
  const hash = crypto.createHash('sha256').update(JSON.stringify(parts)).digest('hex');
  recipeHashes.set(recipe, hash);
  return hash;
}

const isElf = (file: string): boolean => {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(4);
    return fs.readSync(fd, head, 0, 4, 0) === 4 && head.equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  } finally {
    fs.closeSync(fd);
  }
};

/** The libraries (and loader) ldd names for these ELF files, as absolute paths; ldd looks in libraryPath too. */
function libraries(files: string[], libraryPath: string[] = []): string[] {
  if (files.length === 0) return [];
  const env = libraryPath.length > 0 ? { ...process.env, LD_LIBRARY_PATH: libraryPath.join(':') } : process.env;
  const r = spawnSync('ldd', files, { encoding: 'utf8', maxBuffer: 64 << 20, env });
  const libs = new Set<string>();
  const notFound: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('\t')) continue; // "file:" headers when there are several
    const m = /=>\s*(\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1] === 'not') notFound.push(line.trim());
    else if (m?.[1].startsWith('/')) libs.add(m[1]);
  }
  if (notFound.length > 0) throw new Error(`ldd cannot find libraries: ${[...new Set(notFound)].join('; ')}`);
  return [...libs];
}

/** Regular files under dir (relative to it), without the excluded paths. */
function walk(dir: string, exclude: Set<string>, rel = ''): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
    const r = path.join(rel, e.name);
    if (exclude.has(r)) return [];
    if (e.isDirectory()) return walk(dir, exclude, r);
    return e.isFile() ? [r] : [];
  });
}

/** Root filesystem tarballs, made once per process. */
const tarballs = new Map<string, string>();
/** Their directories, removed as the process exits (one listener for all: a listener each passed Node's warning count). */
const rootfsDirs: string[] = [];
process.on('exit', () => {
  for (const dir of rootfsDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function rootfs(recipe: ImageRecipe): string {
  const made = tarballs.get(recipe.image);
  if (made) return made;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firecampd-rootfs-'));
  rootfsDirs.push(dir);
  const root = path.join(dir, 'rootfs');
  const inRoot = (p: string) => path.join(root, p);
  const missing = (what: string) => new Error(`${recipe.image}: ${what} is missing here (apt-get install ${packagesOf(recipe).join(' ')})`);

  for (const d of ['bin', 'etc', 'tmp', 'data', 'proc', 'sys', 'dev']) fs.mkdirSync(inRoot(d), { recursive: true });
  fs.chmodSync(inRoot('tmp'), 0o1777);
  const busybox = which('busybox')!;
  fs.copyFileSync(busybox, inRoot('bin/busybox'));
  fs.chmodSync(inRoot('bin/busybox'), 0o755);
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((a) => a && a !== 'busybox')) {
    fs.symlinkSync('busybox', inRoot(`bin/${applet}`));
  }

  const elves: string[] = [];
  const libraryPath: string[] = [];
  // Programs: at their path here, symlinks on the way kept (redis-server → redis-check-rdb).
  for (const prog of recipe.programs ?? []) {
    let p = prog.startsWith('/') ? prog : which(prog);
    if (!p || !fs.existsSync(p)) throw missing(`program ${prog}`);
    for (let hops = 0; fs.lstatSync(p).isSymbolicLink() && hops < 40; hops++) {
      const target = fs.readlinkSync(p);
      if (!fs.existsSync(inRoot(p))) {
        fs.mkdirSync(path.dirname(inRoot(p)), { recursive: true });
        fs.symlinkSync(target, inRoot(p));
      }
      p = path.resolve(path.dirname(p), target);
    }
    if (!fs.existsSync(inRoot(p))) {
      fs.mkdirSync(path.dirname(inRoot(p)), { recursive: true });
      fs.copyFileSync(p, inRoot(p));
    }
    elves.push(p);
  }
  // Trees: copied whole (symlinks as they are), their ELF files' libraries too.
  for (const tree of recipe.trees ?? []) {
    if (!fs.existsSync(tree.path)) throw missing(tree.path);
    const exclude = new Set(tree.exclude ?? []);
    fs.mkdirSync(path.dirname(inRoot(tree.path)), { recursive: true });
    fs.cpSync(tree.path, inRoot(tree.path), {
      recursive: true,
      verbatimSymlinks: true,
      filter: (src) => !exclude.has(path.relative(tree.path, src)),
    });
    elves.push(
      ...walk(tree.path, exclude)
        .map((f) => path.join(tree.path, f))
        .filter(isElf),
    );
    libraryPath.push(...(tree.libraryPath ?? []).map((d) => path.join(tree.path, d)));
  }
  // Jars from Maven Central: every one of each list in its directory (jars are no ELF files: nothing for ldd).
  for (const m of mavenJars(recipe)) {
    fs.mkdirSync(inRoot(m.dir), { recursive: true });
    for (const jar of m.jars) fs.copyFileSync(jar, path.join(inRoot(m.dir), path.basename(jar)));
  }
  // Every library ldd names (and the loader), at the same path as here.
  for (const lib of libraries(elves, libraryPath)) {
    if (fs.existsSync(inRoot(lib))) continue;
    fs.mkdirSync(path.dirname(inRoot(lib)), { recursive: true });
    fs.copyFileSync(fs.realpathSync(lib), inRoot(lib));
  }

  const users = recipe.users ?? [];
  const groups = recipe.groups ?? [];
  fs.writeFileSync(
    inRoot('etc/passwd'),
    ['root:x:0:0:root:/root:/bin/sh', ...users.map((u) => `${u.name}:x:${u.uid}:${u.gid}::${u.home}:${u.shell ?? '/bin/sh'}`), ''].join('\n'),
  );
  fs.writeFileSync(inRoot('etc/group'), ['root:x:0:', ...groups.map((g) => `${g.name}:x:${g.gid}:`), ''].join('\n'));
  const ownerOf = (what: string, name: string | undefined) => {
    const owner = name === undefined || name === 'root' ? { uid: 0, gid: 0 } : users.find((u) => u.name === name);
    if (!owner) throw new Error(`${recipe.image}: ${what} belongs to ${name}, who is not among the recipe's users`);
    return owner;
  };
  for (const d of recipe.dirs ?? []) {
    const owner = ownerOf(`directory ${d.path}`, d.owner);
    fs.mkdirSync(inRoot(d.path), { recursive: true });
    fs.chownSync(inRoot(d.path), owner.uid, owner.gid);
    fs.chmodSync(inRoot(d.path), d.mode ?? 0o755);
  }
  for (const f of recipe.files ?? []) {
    const owner = ownerOf(`file ${f.path}`, f.owner);
    fs.mkdirSync(path.dirname(inRoot(f.path)), { recursive: true });
    fs.writeFileSync(inRoot(f.path), f.content);
    fs.chownSync(inRoot(f.path), owner.uid, owner.gid);
    fs.chmodSync(inRoot(f.path), f.mode ?? 0o644);
  }
  // Symlinks last, so that nothing above is written through one that points out of the root.
  for (const [link, target] of Object.entries(recipe.links ?? {})) {
    fs.mkdirSync(path.dirname(inRoot(link)), { recursive: true });
    fs.rmSync(inRoot(link), { recursive: true, force: true });
    fs.symlinkSync(target, inRoot(link));
  }

  const tar = path.join(dir, 'image.tar');
  execFileSync('tar', ['--numeric-owner', '-C', root, '-cf', tar, '.']);
  tarballs.set(recipe.image, tar);
  return tar;
}

export interface ImportedImage {
  image: string;
  /** Every name it has: image, tags, version tag. */
  names: string[];
  id: string;
  /** false when the engine already had it, built from the same recipe and packages. */
  imported: boolean;
}

/**
 * Build each image (the named ones, by recipe.image; every one unless given) and import it into the engine at
 * `host`, unless it is there already; returns what the engine has now.
 */
export function importImages(host: string, images?: readonly string[]): ImportedImage[] {
  const docker = (args: string[]) => execFileSync('docker', ['-H', host, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  return selectRecipes(images).map((recipe) => {
    const names = imageNames(recipe);
    const hash = recipeHash(recipe);
    const have = new Map<string, { id: string; label: string }>();
    for (const name of names) {
      try {
        const [id, label] = docker(['image', 'inspect', '--format', `{{.Id}} {{index .Config.Labels "${LABEL}"}}`, name]).split(' ');
        have.set(name, { id, label });
      } catch {
        /* not there */
      }
    }
    const cached = have.get(recipe.image);
    const imported = cached?.label !== hash;
    let id = cached?.id ?? '';
    if (imported) {
      const env = { PATH: DEFAULT_PATH, ...recipe.env };
      const changes = [
        ...Object.entries(env).map(([k, v]) => `ENV ${k}=${JSON.stringify(v)}`),
        ...(recipe.user ? [`USER ${recipe.user}`] : []),
        `WORKDIR ${recipe.workdir ?? '/'}`,
        `CMD ${JSON.stringify(recipe.cmd ?? ['/bin/sh'])}`,
        `LABEL ${LABEL}=${hash}`,
      ];
      id = docker(['import', ...changes.flatMap((c) => ['--change', c]), rootfs(recipe), recipe.image]);
    }
    for (const name of names.slice(1)) if (have.get(name)?.id !== id) docker(['tag', recipe.image, name]);
    // The stand-in this one replaces goes, unless something still uses it (a container, another name);
    // an image of that name not built here (no label, e.g. pulled from a registry) is left alone.
    for (const old of new Set([...have.values()].filter((h) => /^[0-9a-f]{64}$/.test(h.label)).map((h) => h.id))) {
      if (old === id) continue;
      try {
        docker(['rmi', old]);
      } catch {
        /* in use */
      }
    }
    return { image: recipe.image, names, id, imported };
  });
}

/**
 * The Java agents members' JVMs load for their metrics (the JMX exporter), kept here for nodes that cannot reach
 * Maven Central themselves (the test beds' namespaces): `firecampd --java-agents-dir` names this directory.
 */
export const JAVA_AGENTS_DIR = path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'firecampd', 'java-agents');

/** Fetch the Java agents the types name into JAVA_AGENTS_DIR, unless there already; their paths. */
export async function fetchJavaAgents(): Promise<string[]> {
  const agents = new JavaAgents(JAVA_AGENTS_DIR);
  return Promise.all([JMX_EXPORTER_JAR].map((jar) => agents.path(jar)));
}

async function main(argv: string[]): Promise<void> {
  const flag = (name: string) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const given = flag('--docker-host') ?? process.env.DOCKER_HOST ?? '/var/run/docker.sock';
  const host = given.includes('://') ? given : `unix://${given}`;
  const only = argv.includes('--only') ? (flag('--only') ?? '').split(',').filter(Boolean) : undefined;
  if (only?.length === 0) throw new Error('--only needs a comma-separated list of images, e.g. --only zookeeper:3.9,apache/kafka:4.1.1');
  requireImageTools(only);
  const images = importImages(host, only);
  const javaAgents = await fetchJavaAgents();
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify({ docker_host: host, images, java_agents: javaAgents }) + '\n');
    return;
  }
  for (const i of images) process.stdout.write(`${i.names.join(' ').padEnd(34)} ${i.id.slice(0, 19)} ${i.imported ? 'imported' : 'already there'}\n`);
  process.stdout.write(`into ${host}; do the same on every node that may run members\n`);
  process.stdout.write(
    `Java agents (members' metrics) in ${JAVA_AGENTS_DIR}: for nodes without Maven Central, firecampd --java-agents-dir ${JAVA_AGENTS_DIR}\n`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((err: { stderr?: string; message: string }) => {
    process.stderr.write(`images: ${err.stderr?.toString().trim() || err.message}\n`);
    process.exit(1);
  });
}
