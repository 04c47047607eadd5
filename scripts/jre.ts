// The Java runtime of the JVM stand-ins (ZooKeeper, Kafka): Debian's
// openjdk-17-jre-headless, at its own path, with /opt/java/openjdk linked to
// it and JAVA_HOME and PATH set as in the eclipse-temurin images upstream's
// are built on. Plain data, like the recipes that spread it:
//
//   packages: [...JRE_17.packages, …], trees: [...JRE_17.trees, …],
//   links: { ...JRE_17.links, … }, env: { ...JRE_17.env, … }
import type { ImageRecipe } from './image-recipe.ts';

const HOME = '/usr/lib/jvm/java-17-openjdk-amd64';

/** The JDK's programs: left out but for the few worth having in a server image (when the JDK is installed here). */
const JDK_PROGRAMS = [
  'jar',
  'jarsigner',
  'javac',
  'javadoc',
  'javap',
  'jconsole',
  'jdb',
  'jdeprscan',
  'jdeps',
  'jfr',
  'jhsdb',
  'jimage',
  'jinfo',
  'jlink',
  'jmap',
  'jmod',
  'jpackage',
  'jrunscript',
  'jshell',
  'jstat',
  'jstatd',
  'rmiregistry',
  'serialver',
];

export const JRE_17: Required<Pick<ImageRecipe, 'packages' | 'trees' | 'links' | 'env'>> = {
  // ca-certificates-java: lib/security/cacerts links to its /etc/ssl/certs/java/cacerts.
  packages: ['openjdk-17-jre-headless', 'ca-certificates-java'],
  trees: [
    {
      path: HOME,
      exclude: [
        // The JDK's (and other packages') parts: modules to link, headers, manual pages, sources, javac's symbol file.
        'jmods',
        'include',
        'man',
        'docs',
        'demo',
        'lib/src.zip',
        'lib/ct.sym',
        ...JDK_PROGRAMS.map((p) => `bin/${p}`),
        // The desktop's libraries (openjdk-17-jre, libatk-wrapper-java-jni): X11 and GTK, which a server does without.
        'lib/libawt_xawt.so',
        'lib/libjawt.so',
        'lib/libsplashscreen.so',
        'lib/libatk-wrapper.so',
      ],
      // libjvm.so, which the launcher loads before the libraries that need it.
      libraryPath: ['lib/server'],
    },
    // Debian's JRE keeps its configuration here: lib/jvm.cfg, conf/ and lib/security/ link into it.
    { path: '/etc/java-17-openjdk' },
    { path: '/etc/ssl/certs/java' },
  ],
  links: { '/opt/java/openjdk': HOME },
  env: {
    JAVA_HOME: '/opt/java/openjdk',
    PATH: '/opt/java/openjdk/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  },
};
