// Volumes as directories in the node's data dir: the single-node default.
// The data stays on this node, so a member that moves elsewhere starts empty.
import fs from 'node:fs';
import path from 'node:path';
import type { Holder, VolumeProvider, VolumeSpec } from './types.ts';

export class LocalVolumes implements VolumeProvider {
  readonly kind = 'local' as const;

  constructor(private readonly root: string) {}

  async attach(vol: VolumeSpec, _holder: Holder): Promise<string> {
    const dir = path.join(this.root, vol.id);
    await fs.promises.mkdir(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  async detach(_vol: VolumeSpec): Promise<void> {
    /* nothing is mounted */
  }
}
