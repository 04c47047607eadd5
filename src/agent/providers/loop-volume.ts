// Volumes as ext4 image files on storage every node can reach (NFS, a shared
// disk): attach = losetup + mount on the node that runs the member, detach =
// umount + losetup -d. Beside each image an owner file says which node holds
// it at which epoch; a volume held elsewhere at the same or a later epoch is
// never mounted, so two nodes cannot write one filesystem.
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../exec.ts';
import { writePrivate } from '../../security/pki.ts';
import { mountedAt } from './mounts.ts';
import type { Holder, VolumeProvider, VolumeSpec } from './types.ts';

export class LoopVolumes implements VolumeProvider {
  readonly kind = 'loop' as const;

  /** `shared`: where the images live; `mountRoot`: where this node mounts them. */
  constructor(
    private readonly shared: string,
    private readonly mountRoot: string,
    private readonly node: string,
  ) {}

  private image(vol: VolumeSpec): string {
    return path.join(this.shared, `${vol.id}.img`);
  }

  private ownerFile(vol: VolumeSpec): string {
    return path.join(this.shared, `${vol.id}.owner`);
  }

  private owner(vol: VolumeSpec): Holder | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.ownerFile(vol), 'utf8')) as Holder;
    } catch {
      return undefined;
    }
  }

  async attach(vol: VolumeSpec, holder: Holder): Promise<string> {
    const dir = path.join(this.mountRoot, vol.id);
    const owner = this.owner(vol);
    if (owner && owner.node !== this.node && owner.epoch >= holder.epoch) {
      throw new Error(`volume ${vol.id} is held by node ${owner.node} at epoch ${owner.epoch}; refusing epoch ${holder.epoch}`);
    }
    if (owner && owner.node === this.node && owner.epoch > holder.epoch) {
      throw new Error(`volume ${vol.id} is held at epoch ${owner.epoch}; epoch ${holder.epoch} is stale`);
    }
    if (mountedAt(dir)) {
      writePrivate(this.ownerFile(vol), JSON.stringify(holder));
      return dir;
    }
    fs.mkdirSync(this.shared, { recursive: true });
    const img = this.image(vol);
    if (!fs.existsSync(img)) {
      // Made under a temporary name, so that a crash never leaves a half-made filesystem.
      const tmp = `${img}.new`;
      await run('truncate', ['-s', `${vol.sizeMiB}M`, tmp]);
      await run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', tmp]);
      fs.renameSync(tmp, img);
    }
    writePrivate(this.ownerFile(vol), JSON.stringify(holder));
    const device = (await this.loopOf(img)) ?? (await run('losetup', ['--find', '--show', img])).trim();
    fs.mkdirSync(dir, { recursive: true });
    await run('mount', ['-t', 'ext4', device, dir]);
    return dir;
  }

  async detach(vol: VolumeSpec): Promise<void> {
    const dir = path.join(this.mountRoot, vol.id);
    if (mountedAt(dir)) await run('umount', [dir]);
    const device = await this.loopOf(this.image(vol));
    if (device) await run('losetup', ['-d', device]);
    if (this.owner(vol)?.node === this.node) fs.rmSync(this.ownerFile(vol), { force: true });
  }

  /** The loop device already backed by `img`, if any. */
  private async loopOf(img: string): Promise<string | undefined> {
    const out = await run('losetup', ['-j', img]);
    return /^(\/dev\/loop\d+):/.exec(out)?.[1];
  }
}
