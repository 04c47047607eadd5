// The local half of an EBS volume on a real block device: a loop device
// stands in for the disk AWS would attach, named as udev names an NVMe EBS
// disk on a Nitro instance. Needs root, losetup and mkfs.ext4.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlockMounter } from '../src/agent/providers/block-mount.ts';
import { mountedAt, mounts } from '../src/agent/providers/mounts.ts';
import { tempDir } from './helpers/proc.ts';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();

describe('block device mounter (EBS, on a loop device)', () => {
  const dir = tempDir('fc-block-');
  const byId = path.join(dir, 'by-id');
  const mnt = path.join(dir, 'mnt');
  const devices: string[] = [];
  const volume = { volumeId: 'vol-0123456789abcdef0', requested: '/dev/xvdq-not-here' };

  /** A blank 32 MiB disk, as a new EBS volume is, and its udev name by serial. */
  const disk = (volumeId: string): string => {
    const img = path.join(dir, `${volumeId}.img`);
    sh('truncate', ['-s', '32M', img]);
    const dev = sh('losetup', ['--find', '--show', img]);
    devices.push(dev);
    fs.symlinkSync(dev, path.join(byId, `nvme-Amazon_Elastic_Block_Store_${volumeId.replace('-', '')}`));
    return dev;
  };

  before(() => {
    assert.equal(process.getuid?.(), 0, 'this test needs root (losetup, mkfs.ext4 and mount)');
    fs.mkdirSync(byId);
  });
  after(() => {
    for (const m of mounts()) if (m.dir.startsWith(mnt + '/')) execFileSync('umount', ['-l', m.dir]);
    for (const dev of devices) execFileSync('losetup', ['-d', dev]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('formats a new volume once, mounts it, and keeps its data across a detach and a second mount', async () => {
    const dev = disk(volume.volumeId);
    const m = new BlockMounter(mnt, { byIdDir: byId, waitMs: 1000 });
    const at = m.mountDir('cache-0');
    await m.mount(volume, at);
    assert.equal(mountedAt(at), dev);
    assert.equal(sh('blkid', ['-o', 'value', '-s', 'TYPE', dev]), 'ext4');
    fs.writeFileSync(path.join(at, 'appendonly.aof'), 'SET k v\n');
    await m.mount(volume, at); // already mounted: nothing happens
    await m.unmount(at);
    assert.equal(mountedAt(at), undefined);
    await m.unmount(at); // idempotent
    await m.mount(volume, at);
    assert.equal(fs.readFileSync(path.join(at, 'appendonly.aof'), 'utf8'), 'SET k v\n', 'not formatted again');
    await m.unmount(at);
  });

  it('refuses a disk holding a filesystem it did not make, and says when no device appears', async () => {
    const foreign = { volumeId: 'vol-0fffffffffffffff1', requested: '/dev/xvdr-not-here' };
    sh('mkswap', [disk(foreign.volumeId)]);
    const m = new BlockMounter(mnt, { byIdDir: byId, waitMs: 300 });
    await assert.rejects(m.mount(foreign, m.mountDir('x-0')), /holds a swap filesystem, not ext4: firecampd does not mount what it did not make/);
    await assert.rejects(
      m.mount({ volumeId: 'vol-0000000000000000a', requested: '/dev/xvds-not-here' }, m.mountDir('y-0')),
      /volume vol-0000000000000000a is attached but no device for it appeared/,
    );
  });
});
