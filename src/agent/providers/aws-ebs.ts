// Volumes as AWS EBS volumes, found by tags (cluster, volume id). Attach =
// AttachVolume to this instance + mount; a volume attached to another
// instance is taken only from a holder at an earlier epoch (force-detached:
// that holder has been fenced by its lease), never from the current one. The
// holder's epoch is a tag on the volume, so a stale epoch is refused.
// Tested against aws-sdk-client-mock: AWS is out of reach from CI.
import {
  AttachVolumeCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  type EC2Client,
  type Volume,
} from '@aws-sdk/client-ec2';
import type { Mounter } from './block-mount.ts';
import type { Holder, VolumeProvider, VolumeSpec } from './types.ts';

export interface EbsOptions {
  ec2: EC2Client;
  instanceId: string;
  zone: string;
  cluster: string;
  mounter: Mounter;
  pollMs?: number;
  timeoutMs?: number;
}

const DEVICES = 'fghijklmnop'.split('').map((c) => `/dev/xvd${c}`);
const TAG = { cluster: 'firecampd:cluster', volume: 'firecampd:volume', epoch: 'firecampd:epoch' } as const;

export class EbsVolumes implements VolumeProvider {
  readonly kind = 'aws-ebs' as const;

  constructor(private readonly o: EbsOptions) {}

  private async find(vol: VolumeSpec): Promise<Volume | undefined> {
    const r = await this.o.ec2.send(
      new DescribeVolumesCommand({
        Filters: [
          { Name: `tag:${TAG.cluster}`, Values: [this.o.cluster] },
          { Name: `tag:${TAG.volume}`, Values: [vol.id] },
        ],
      }),
    );
    return r.Volumes?.[0];
  }

  async attach(vol: VolumeSpec, holder: Holder): Promise<string> {
    let v = await this.find(vol);
    if (!v) {
      const created = await this.o.ec2.send(
        new CreateVolumeCommand({
          AvailabilityZone: vol.zone ?? this.o.zone,
          Size: Math.max(1, Math.ceil(vol.sizeMiB / 1024)),
          VolumeType: 'gp3',
          TagSpecifications: [
            {
              ResourceType: 'volume',
              Tags: [
                { Key: TAG.cluster, Value: this.o.cluster },
                { Key: TAG.volume, Value: vol.id },
              ],
            },
          ],
        }),
      );
      v = await this.waitFor(vol, (x) => x?.State === 'available', `volume ${vol.id} (${created.VolumeId}) to become available`);
    }
    const volumeId = v!.VolumeId!;
    const attachment = v!.Attachments?.find((a) => a.State === 'attached' || a.State === 'attaching');
    let device = attachment?.Device;
    const heldAt = Number(v!.Tags?.find((t) => t.Key === TAG.epoch)?.Value ?? 0);
    if (heldAt > holder.epoch) throw new Error(`volume ${vol.id} is held at epoch ${heldAt}; epoch ${holder.epoch} is stale`);
    if (attachment && attachment.InstanceId !== this.o.instanceId) {
      if (heldAt >= holder.epoch)
        throw new Error(`volume ${vol.id} is attached to instance ${attachment.InstanceId} at epoch ${heldAt}; refusing epoch ${holder.epoch}`);
      // An earlier holder: its lease has expired (the controldb claim says so), so it is fenced.
      await this.o.ec2.send(new DetachVolumeCommand({ VolumeId: volumeId, Force: true }));
      await this.waitFor(vol, (x) => x?.State === 'available', `volume ${vol.id} to be force-detached from ${attachment.InstanceId}`);
      device = undefined;
    }
    if (!device || attachment?.InstanceId !== this.o.instanceId) {
      device = await this.freeDevice();
      await this.o.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: this.o.instanceId, Device: device }));
      await this.waitFor(
        vol,
        (x) => x?.Attachments?.some((a) => a.InstanceId === this.o.instanceId && a.State === 'attached') ?? false,
        `volume ${vol.id} to attach`,
      );
    }
    if (heldAt !== holder.epoch)
      await this.o.ec2.send(new CreateTagsCommand({ Resources: [volumeId], Tags: [{ Key: TAG.epoch, Value: String(holder.epoch) }] }));
    const dir = this.o.mounter.mountDir(vol.id);
    await this.o.mounter.mount({ requested: device, volumeId }, dir);
    return dir;
  }

  async detach(vol: VolumeSpec): Promise<void> {
    const v = await this.find(vol);
    const mine = v?.Attachments?.find((a) => a.InstanceId === this.o.instanceId && a.State !== 'detached');
    if (!v || !mine) return;
    await this.o.mounter.unmount(this.o.mounter.mountDir(vol.id));
    await this.o.ec2.send(new DetachVolumeCommand({ VolumeId: v.VolumeId!, InstanceId: this.o.instanceId }));
    await this.waitFor(vol, (x) => x?.State === 'available', `volume ${vol.id} to detach`);
  }

  private async freeDevice(): Promise<string> {
    const r = await this.o.ec2.send(new DescribeInstancesCommand({ InstanceIds: [this.o.instanceId] }));
    const used = new Set((r.Reservations?.[0]?.Instances?.[0]?.BlockDeviceMappings ?? []).map((m) => m.DeviceName?.replace('/dev/sd', '/dev/xvd')));
    const free = DEVICES.find((d) => !used.has(d));
    if (!free) throw new Error(`instance ${this.o.instanceId} has no free device name for another volume`);
    return free;
  }

  private async waitFor(vol: VolumeSpec, ok: (v: Volume | undefined) => boolean, what: string): Promise<Volume | undefined> {
    const deadline = Date.now() + (this.o.timeoutMs ?? 120_000);
    for (;;) {
      const v = await this.find(vol);
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (state ${v?.State ?? 'missing'})`);
      await new Promise((r) => setTimeout(r, this.o.pollMs ?? 1000));
    }
  }
}
