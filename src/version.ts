// Filled in by esbuild at build time; the fallback serves runs from source.
declare const __FIRECAMPD_VERSION__: string | undefined;

export const VERSION: string = typeof __FIRECAMPD_VERSION__ === 'string' ? __FIRECAMPD_VERSION__ : (process.env.npm_package_version ?? '0.0.0-dev');
