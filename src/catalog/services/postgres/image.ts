// The stand-in for the upstream postgres:15 image, built by `npm run images`
// from Debian's postgresql-15 (see scripts/image-recipe.ts), and tagged with
// the package's exact version too (postgres:15.18) so that an upgrade can go
// from one tag to another. What a module may rely on, as in upstream:
// user postgres (uid and gid 999, home /var/lib/postgresql), PGDATA, the
// server's programs on PATH (postgres, initdb, pg_ctl, pg_basebackup,
// pg_rewind, psql, pg_isready, pg_controldata…), the server's own library
// directory (plpgsql, libpqwalreceiver for streaming replication), the share
// directory initdb needs, the system time zones, /var/run/postgresql (the
// default socket directory) owned by postgres. Not there: the entrypoint
// script and gosu (run the programs as postgres yourself), locales other than
// C and C.UTF-8, JIT (llvmjit.so is left out: postgres then runs without it),
// Debian's pg_wrapper/postgresql-common layer. Its exporter's stand-in follows.
import type { ImageRecipe } from '../../../../scripts/image-recipe.ts';
import { PG_EXPORTER_IMAGE, postgres } from './postgres.ts';

export const image: ImageRecipe = {
  image: postgres.image,
  versionTag: { repository: 'postgres', package: 'postgresql-15' },
  packages: ['postgresql-15', 'postgresql-client-15', 'libpq5', 'tzdata', 'libc-bin'],
  // initdb runs `locale -a` to find the collations to import.
  programs: ['/usr/bin/locale'],
  trees: [
    { path: '/usr/lib/postgresql/15', exclude: ['lib/bitcode', 'lib/llvmjit.so', 'lib/llvmjit_types.bc', 'lib/pgxs'] },
    { path: '/usr/share/postgresql/15', exclude: ['man'] },
    { path: '/usr/share/zoneinfo' },
    { path: '/usr/lib/locale/C.utf8' },
  ],
  links: { '/var/run': '/run' },
  groups: [{ name: 'postgres', gid: 999 }],
  users: [{ name: 'postgres', uid: 999, gid: 999, home: '/var/lib/postgresql' }],
  dirs: [
    { path: '/var/lib/postgresql', owner: 'postgres', mode: 0o755 },
    { path: '/var/lib/postgresql/data', owner: 'postgres', mode: 0o1777 },
    { path: '/run/postgresql', owner: 'postgres', mode: 0o3777 },
  ],
  env: {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/15/bin',
    PG_MAJOR: '15',
    PGDATA: '/var/lib/postgresql/data',
  },
};

/**
 * The stand-in for the Prometheus community's PostgreSQL exporter (quay.io/prometheuscommunity/postgres-exporter),
 * which members run beside them for their metrics: Debian's build of the same version. As upstream: the program at
 * /bin/postgres_exporter, user nobody. The module gives its whole command line, so it relies on nothing else.
 */
export const exporter: ImageRecipe = {
  image: PG_EXPORTER_IMAGE,
  packages: ['prometheus-postgres-exporter'],
  programs: ['/usr/bin/prometheus-postgres-exporter'],
  links: { '/bin/postgres_exporter': '/usr/bin/prometheus-postgres-exporter' },
  user: '65534:65534',
  cmd: ['/bin/postgres_exporter'],
};
