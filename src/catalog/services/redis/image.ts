// The stand-in for the Redis type's default image, built by `npm run images`
// from Debian's redis-server and redis-tools (see scripts/image-recipe.ts),
// and of its exporter's.
// Like the upstream redis image: the programs in /usr/local/bin, user redis
// (uid and gid 999), /data owned by it and the working directory.
import type { ImageRecipe } from '../../../../scripts/image-recipe.ts';
import { REDIS_EXPORTER_IMAGE, redis } from './redis.ts';

const programs = ['redis-server', 'redis-cli', 'redis-benchmark', 'redis-check-aof', 'redis-check-rdb'];

export const image: ImageRecipe = {
  image: redis.image,
  packages: ['redis-server', 'redis-tools'],
  programs: programs.map((p) => `/usr/bin/${p}`),
  links: Object.fromEntries(programs.map((p) => [`/usr/local/bin/${p}`, `/usr/bin/${p}`])),
  groups: [{ name: 'redis', gid: 999 }],
  users: [{ name: 'redis', uid: 999, gid: 999, home: '/home/redis' }],
  dirs: [{ path: '/data', owner: 'redis', mode: 0o755 }],
  workdir: '/data',
  cmd: ['redis-server'],
};

/**
 * The stand-in for the Prometheus community's Redis exporter (oliver006/redis_exporter), which members run beside
 * them for their metrics: Debian's build of the same version. As upstream: the program at /redis_exporter, user
 * 59000. The module gives its whole command line, so it relies on nothing else.
 */
export const exporter: ImageRecipe = {
  image: REDIS_EXPORTER_IMAGE,
  packages: ['prometheus-redis-exporter'],
  programs: ['/usr/bin/prometheus-redis-exporter'],
  links: { '/redis_exporter': '/usr/bin/prometheus-redis-exporter' },
  user: '59000:59000',
  cmd: ['/redis_exporter'],
};
