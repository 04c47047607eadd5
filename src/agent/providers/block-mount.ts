// The local half of a network block device (an EBS volume): find the device
// the kernel made for it, put an ext4 filesystem on it the first time, and
// mount it where the member's container binds it.
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../../exec.ts';
import { mountedAt } from './mounts.ts';

/** How an attached volume shows up: the device name asked for, and the volume's id. */
export interface AttachedDevice {
  /** The name given to AttachVolume, e.g. /dev/xvdf. */
  requested: string;
  /** The EBS volume id, e.g. vol-0123456789abcdef0. */
  volumeId: string;
}

export interface Mounter {
  mount(device: AttachedDevice, dir: string): Promise<void>;
  unmount(dir: string): Promise<void>;
  /** Where firecampd's volume `id` (not the EBS id) is mounted. */
  mountDir(id: string): string;
}

export interface BlockMounterOptions {
  /** Where udev names disks by serial (Nitro instances show EBS volumes as NVMe disks there). */
  byIdDir?: string;
  /** How long to wait for the device to appear after the attach. */
  waitMs?: number;
}

export class BlockMounter implements Mounter {
  constructor(
    private readonly mountRoot: string,
    private readonly o: BlockMounterOptions = {},
  ) {}

  mountDir(id: string): string {
    return path.join(this.mountRoot, id);
  }

  /**
   * Where the device is: on Nitro instances an NVMe disk whose serial is the
   * volume id without its dash, whatever name was asked for; on Xen the name
   * asked for, or its /dev/sd twin.
   */
  private candidates(d: AttachedDevice): string[] {
    const serial = d.volumeId.replace('-', '');
    return [
      path.join(this.o.byIdDir ?? '/dev/disk/by-id', `nvme-Amazon_Elastic_Block_Store_${serial}`),
      d.requested,
      d.requested.replace('/dev/xvd', '/dev/sd'),
    ];
  }

  private async find(d: AttachedDevice): Promise<string> {
    const deadline = Date.now() + (this.o.waitMs ?? 30_000);
    for (;;) {
      const found = this.candidates(d).find((c) => fs.existsSync(c));
      if (found) return fs.realpathSync(found);
      if (Date.now() > deadline)
        throw new Error(`volume ${d.volumeId} is attached but no device for it appeared (looked for ${this.candidates(d).join(', ')})`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async mount(d: AttachedDevice, dir: string): Promise<void> {
    if (mountedAt(dir)) return;
    const device = await this.find(d);
    // blkid exits 2 when it finds no filesystem: a new volume.
    const type = (await run('blkid', ['-o', 'value', '-s', 'TYPE', device], { okCodes: [2] })).trim();
    if (type === '') {
      await run('mkfs.ext4', ['-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', device]);
    } else if (type !== 'ext4') {
      throw new Error(`volume ${d.volumeId} (${device}) holds a ${type} filesystem, not ext4: firecampd does not mount what it did not make`);
    }
    fs.mkdirSync(dir, { recursive: true });
    await run('mount', ['-t', 'ext4', device, dir]);
  }

  async unmount(dir: string): Promise<void> {
    if (mountedAt(dir)) await run('umount', [dir]);
  }
}
