// What scripts/images.ts needs to build a stand-in for an upstream image from
// this machine's Debian packages (and, for the JVM images, jars from Maven
// Central). Each service type keeps its recipe beside it
// (src/catalog/services/<type>/image.ts): plain data, imported there as a type
// only (the JVM recipes also spread JRE_17 of scripts/jre.ts, plain data too),
// so nothing of the builder ends up in the daemon's bundle.

/** A user written to the image's /etc/passwd. */
export interface ImageUser {
  name: string;
  uid: number;
  /** Its primary group's gid (list the group in `groups`). */
  gid: number;
  home: string;
  /** /bin/sh unless given (busybox's shell). */
  shell?: string;
}

/** A directory made in the image, with its owner and mode. */
export interface ImageDir {
  path: string;
  /** A user of the recipe (its uid and primary gid); root unless given. */
  owner?: string;
  /** e.g. 0o755 (the default), 0o1777, 0o3777. */
  mode?: number;
}

/** A directory tree copied whole; every ELF file in it brings the libraries ldd names. */
export interface ImageTree {
  path: string;
  /** Paths relative to `path` left out (files or whole directories). */
  exclude?: string[];
  /**
   * Directories relative to `path` where ldd looks too: for libraries that need one the program loads itself
   * first (the JVM's libraries need lib/server/libjvm.so, which ldd cannot find on its own).
   */
  libraryPath?: string[];
}

/** Jars from Maven Central, for a JVM image. */
export interface ImageMaven {
  /** The directory of the image they go into, e.g. /opt/kafka/libs. */
  dir: string;
  /**
   * Coordinates `group:artifact:version` (or `group:artifact:version:classifier`), resolved together with
   * their runtime dependencies (Maven's nearest-wins: list the artifact whose dependency versions should win first).
   */
  artifacts: string[];
  /**
   * `group:artifact` (either may be `*`) left out of every artifact's dependencies, with all it brings (Maven's
   * exclusions): for jars that another list of the image provides, e.g. a plugin's dependency on the server.
   */
  exclude?: string[];
}

/** A file written into the image: a launcher script, a default configuration. */
export interface ImageFile {
  path: string;
  content: string;
  /** 0o644 unless given (give a script 0o755). */
  mode?: number;
  /** A user of the recipe (its uid and primary gid); root unless given. */
  owner?: string;
}

/**
 * A stand-in image: busybox (/bin/sh and its applets in /bin) plus what is
 * listed here, every file at the same path as on this machine.
 */
export interface ImageRecipe {
  /** The name it is imported as, e.g. `postgres:15`. */
  image: string;
  /** Further names for the same image. */
  tags?: string[];
  /** A further name `<repository>:<upstream version of package>` (epoch and Debian revision dropped), e.g. postgres:15.18. */
  versionTag?: { repository: string; package: string };
  /** The Debian packages its files come from (busybox-static, the base, is implied). */
  packages: string[];
  /** Programs copied with the libraries ldd names: names looked up on PATH, or absolute paths; symlinks on the way are kept. */
  programs?: string[];
  /** Whole directory trees copied. */
  trees?: ImageTree[];
  /** Jars resolved from Maven Central (each list with its runtime dependencies), copied into their directory. */
  maven?: ImageMaven[];
  /** Symlinks made in the image: path → target (e.g. /usr/local/bin/redis-server → /usr/bin/redis-server). */
  links?: Record<string, string>;
  /** Users (root is always there). */
  users?: ImageUser[];
  /** Groups (root is always there). */
  groups?: { name: string; gid: number }[];
  /** Directories made after everything is copied. */
  dirs?: ImageDir[];
  /** Files written after the directories (their parents made as root's when missing). */
  files?: ImageFile[];
  /** ENV of the image; PATH is /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin unless given. */
  env?: Record<string, string>;
  /** USER: a name among `users`, or uid[:gid]; root unless given. */
  user?: string;
  /** WORKDIR; / unless given. */
  workdir?: string;
  /** CMD; ["/bin/sh"] unless given. */
  cmd?: string[];
}
