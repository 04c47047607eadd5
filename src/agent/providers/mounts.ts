// The kernel's table of mounts, as the volume providers and the watchdog read it.
import fs from 'node:fs';

export interface Mount {
  device: string;
  dir: string;
}

export function mounts(): Mount[] {
  return fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [device, dir] = l.split(' ');
      return { device: device, dir: dir };
    });
}

/** The device mounted at `dir`, if any. */
export function mountedAt(dir: string): string | undefined {
  return mounts().find((m) => m.dir === dir)?.device;
}
