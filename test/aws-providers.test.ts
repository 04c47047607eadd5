// The AWS providers against aws-sdk-client-mock: AWS cannot be reached from
// here, so these check the calls made and how answers are handled.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it, beforeEach } from 'node:test';
import {
  AssignPrivateIpAddressesCommand,
  AttachVolumeCommand,
  CreateTagsCommand,
  CreateVolumeCommand,
  DescribeInstancesCommand,
  DescribeVolumesCommand,
  DetachVolumeCommand,
  EC2Client,
  UnassignPrivateIpAddressesCommand,
  type Volume,
} from '@aws-sdk/client-ec2';
import { ChangeResourceRecordSetsCommand, ListResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { mockClient } from 'aws-sdk-client-mock';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
import { EbsVolumes } from '../src/agent/providers/aws-ebs.ts';
import { AwsSecondaryIps } from '../src/agent/providers/aws-ip.ts';
import { awsContext } from '../src/agent/providers/aws.ts';
import type { AttachedDevice, Mounter } from '../src/agent/providers/block-mount.ts';
import { selectProviders } from '../src/agent/providers/select.ts';
import type { ControlDb } from '../src/controldb/controldb.ts';
import { createLogger } from '../src/log.ts';
import { Route53Dns } from '../src/agent/providers/route53.ts';
import type { IpProvider } from '../src/agent/providers/types.ts';

const ec2 = mockClient(EC2Client);
const r53 = mockClient(Route53Client);

class RecordingMounter implements Mounter {
  readonly calls: string[] = [];
  mount(device: AttachedDevice, dir: string) {
    this.calls.push(`mount ${device.volumeId} ${device.requested} ${dir}`);
    return Promise.resolve();
  }
  unmount(dir: string) {
    this.calls.push(`unmount ${dir}`);
    return Promise.resolve();
  }
  mountDir(id: string) {
    return `/mnt/${id}`;
  }
}

const vol = { id: 'cache-0', sizeMiB: 1500 };
const volume = (over: Partial<Volume>): Volume => ({
  VolumeId: 'vol-1',
  State: 'available',
  Attachments: [],
  Tags: [
    { Key: 'firecampd:cluster', Value: 'c1' },
    { Key: 'firecampd:volume', Value: 'cache-0' },
  ],
  ...over,
});

/** `timeoutMs` bounds the provider's waits on the mocked AWS: long, but for the test of a wait that times out. */
function ebs(mounter = new RecordingMounter(), timeoutMs = 20_000) {
  return {
    mounter,
    p: new EbsVolumes({
      ec2: new EC2Client({ region: 'us-east-1' }),
      instanceId: 'i-self',
      zone: 'us-east-1a',
      cluster: 'c1',
      mounter,
      pollMs: 1,
      timeoutMs,
    }),
  };
}

describe('aws providers (mocked AWS)', () => {
  beforeEach(() => {
    ec2.reset();
    r53.reset();
  });

  it('EBS: creates a missing volume by tag, attaches it at the first free device, tags the epoch and mounts it', async () => {
    const attached = volume({ State: 'in-use', Attachments: [{ InstanceId: 'i-self', State: 'attached', Device: '/dev/xvdg' }] });
    ec2
      .on(DescribeVolumesCommand)
      .resolvesOnce({ Volumes: [] })
      .resolvesOnce({ Volumes: [volume({ State: 'creating' })] })
      .resolvesOnce({ Volumes: [volume({})] })
      .resolvesOnce({ Volumes: [volume({ State: 'in-use', Attachments: [{ InstanceId: 'i-self', State: 'attaching', Device: '/dev/xvdg' }] })] })
      .resolves({ Volumes: [attached] });
    ec2.on(CreateVolumeCommand).resolves({ VolumeId: 'vol-1' });
    ec2
      .on(DescribeInstancesCommand)
      .resolves({ Reservations: [{ Instances: [{ BlockDeviceMappings: [{ DeviceName: '/dev/xvda' }, { DeviceName: '/dev/sdf' }] }] }] });
    ec2.on(AttachVolumeCommand).resolves({});
    ec2.on(CreateTagsCommand).resolves({});
    const { p, mounter } = ebs();
    assert.equal(await p.attach(vol, { node: 'n1', epoch: 3 }), '/mnt/cache-0');
    const create = ec2.commandCalls(CreateVolumeCommand)[0].args[0].input;
    assert.equal(create.Size, 2, '1500 MiB rounds up to 2 GiB');
    assert.equal(create.AvailabilityZone, 'us-east-1a');
    assert.deepEqual(create.TagSpecifications![0].Tags, [
      { Key: 'firecampd:cluster', Value: 'c1' },
      { Key: 'firecampd:volume', Value: 'cache-0' },
    ]);
    assert.equal(ec2.commandCalls(AttachVolumeCommand)[0].args[0].input.Device, '/dev/xvdg', '/dev/sdf (= xvdf) is taken');
    assert.deepEqual(ec2.commandCalls(CreateTagsCommand)[0].args[0].input.Tags, [{ Key: 'firecampd:epoch', Value: '3' }]);
    assert.deepEqual(mounter.calls, ['mount vol-1 /dev/xvdg /mnt/cache-0']);
  });

  it('EBS: refuses a volume held elsewhere at the same epoch, and a stale epoch; force-detaches an earlier holder', async () => {
    const elsewhere = (epoch: string) =>
      volume({
        State: 'in-use',
        Attachments: [{ InstanceId: 'i-other', State: 'attached', Device: '/dev/xvdf' }],
        Tags: [{ Key: 'firecampd:epoch', Value: epoch }],
      });
    ec2.on(DescribeVolumesCommand).resolves({ Volumes: [elsewhere('4')] });
    const { p } = ebs();
    await assert.rejects(p.attach(vol, { node: 'n1', epoch: 4 }), /attached to instance i-other at epoch 4; refusing epoch 4/);
    await assert.rejects(p.attach(vol, { node: 'n1', epoch: 3 }), /epoch 3 is stale/);
    assert.equal(ec2.commandCalls(DetachVolumeCommand).length, 0);

    ec2.reset();
    ec2
      .on(DescribeVolumesCommand)
      .resolvesOnce({ Volumes: [elsewhere('4')] })
      .resolvesOnce({ Volumes: [volume({})] })
      .resolves({ Volumes: [volume({ State: 'in-use', Attachments: [{ InstanceId: 'i-self', State: 'attached', Device: '/dev/xvdf' }] })] });
    ec2.on(DetachVolumeCommand).resolves({});
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [{ Instances: [{ BlockDeviceMappings: [] }] }] });
    ec2.on(AttachVolumeCommand).resolves({});
    ec2.on(CreateTagsCommand).resolves({});
    await p.attach(vol, { node: 'n1', epoch: 5 });
    assert.deepEqual(ec2.commandCalls(DetachVolumeCommand)[0].args[0].input, { VolumeId: 'vol-1', Force: true });
  });

  it('EBS: detach unmounts then detaches and waits; it is a no-op when not attached here; waits time out with a clear error', async () => {
    ec2
      .on(DescribeVolumesCommand)
      .resolvesOnce({ Volumes: [volume({ State: 'in-use', Attachments: [{ InstanceId: 'i-self', State: 'attached', Device: '/dev/xvdf' }] })] })
      .resolvesOnce({ Volumes: [volume({ State: 'in-use', Attachments: [{ InstanceId: 'i-self', State: 'detaching' }] })] })
      .resolves({ Volumes: [volume({})] });
    ec2.on(DetachVolumeCommand).resolves({});
    const { p, mounter } = ebs();
    await p.detach(vol);
    assert.deepEqual(mounter.calls, ['unmount /mnt/cache-0']);
    assert.deepEqual(ec2.commandCalls(DetachVolumeCommand)[0].args[0].input, { VolumeId: 'vol-1', InstanceId: 'i-self' });
    await p.detach(vol);
    assert.equal(ec2.commandCalls(DetachVolumeCommand).length, 1, 'already detached: nothing to do');

    ec2.reset();
    ec2.on(DescribeVolumesCommand).resolves({ Volumes: [volume({ State: 'in-use', Attachments: [{ InstanceId: 'i-self', State: 'attached' }] })] });
    ec2.on(DetachVolumeCommand).resolves({});
    await assert.rejects(ebs(undefined, 200).p.detach(vol), /timed out waiting for volume cache-0 to detach \(state in-use\)/);
  });

  it('secondary IPs: assigned with reassignment before the local step, unassigned after it; "not assigned" is ignored', async () => {
    const order: string[] = [];
    const local: IpProvider = {
      kind: 'local',
      add: (ip) => (order.push(`local add ${ip}`), Promise.resolve()),
      remove: (ip) => (order.push(`local remove ${ip}`), Promise.resolve()),
    };
    ec2.on(AssignPrivateIpAddressesCommand).callsFake(() => (order.push('assign'), {}));
    ec2.on(UnassignPrivateIpAddressesCommand).callsFake(() => {
      order.push('unassign');
      throw Object.assign(new Error('not assigned'), { name: 'InvalidParameterValue' });
    });
    const p = new AwsSecondaryIps(new EC2Client({ region: 'us-east-1' }), 'eni-1', local);
    await p.add('10.0.0.50');
    await p.remove('10.0.0.50');
    assert.deepEqual(order, ['assign', 'local add 10.0.0.50', 'local remove 10.0.0.50', 'unassign']);
    assert.deepEqual(ec2.commandCalls(AssignPrivateIpAddressesCommand)[0].args[0].input, {
      NetworkInterfaceId: 'eni-1',
      PrivateIpAddresses: ['10.0.0.50'],
      AllowReassignment: true,
    });

    ec2.on(UnassignPrivateIpAddressesCommand).rejects(Object.assign(new Error('throttled'), { name: 'RequestLimitExceeded' }));
    await assert.rejects(p.remove('10.0.0.50'), /throttled/);
  });

  it('Route 53: UPSERT of an A record with a short TTL; DELETE with the current value, nothing when absent or pointing elsewhere', async () => {
    r53.on(ChangeResourceRecordSetsCommand).resolves({});
    const record = (ip: string) => ({ ResourceRecordSets: [{ Name: 'cache-0.cache.fc.test.', Type: 'A' as const, TTL: 5, ResourceRecords: [{ Value: ip }] }] });
    r53
      .on(ListResourceRecordSetsCommand)
      .resolvesOnce(record('10.0.0.51'))
      .resolvesOnce(record('10.0.0.50'))
      .resolves({ ResourceRecordSets: [{ Name: 'other.fc.test.', Type: 'A' }] });
    const p = new Route53Dns(new Route53Client({ region: 'us-east-1' }), 'Z1');
    await p.upsert('cache-0.cache.fc.test', '10.0.0.50');
    await p.remove('cache-0.cache.fc.test', '10.0.0.50'); // another node pointed it at .51 meanwhile: kept
    await p.remove('cache-0.cache.fc.test', '10.0.0.50');
    await p.remove('cache-0.cache.fc.test', '10.0.0.50');
    const changes = r53.commandCalls(ChangeResourceRecordSetsCommand).map((c) => c.args[0].input.ChangeBatch!.Changes![0]);
    assert.deepEqual(changes, [
      { Action: 'UPSERT', ResourceRecordSet: { Name: 'cache-0.cache.fc.test.', Type: 'A', TTL: 5, ResourceRecords: [{ Value: '10.0.0.50' }] } },
      { Action: 'DELETE', ResourceRecordSet: { Name: 'cache-0.cache.fc.test.', Type: 'A', TTL: 5, ResourceRecords: [{ Value: '10.0.0.50' }] } },
    ]);
  });

  describe('chosen by the node configuration, on the instance the metadata service describes', () => {
    // A stand-in for the EC2 instance metadata service on loopback, speaking IMDSv2 (a session token first).
    let imds: http.Server;
    let endpoint = '';
    const TOKEN = 'imds-session-token';
    const loMac = fs.readFileSync('/sys/class/net/lo/address', 'utf8').trim();
    const paths: Record<string, string> = {
      '/latest/meta-data/instance-id': 'i-0abc',
      '/latest/meta-data/placement/availability-zone': 'eu-west-1b',
      '/latest/meta-data/placement/region': 'eu-west-1',
      [`/latest/meta-data/network/interfaces/macs/${loMac}/interface-id`]: 'eni-0lo',
    };
    before(async () => {
      imds = http.createServer((req, res) => {
        // The SDK joins the endpoint's path and the request's into "//latest/…", which IMDS takes as "/latest/…".
        const url = (req.url ?? '').replace(/^\/+/, '/');
        if (req.method === 'PUT' && url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return res.end(TOKEN);
        if (req.headers['x-aws-ec2-metadata-token'] !== TOKEN) return res.writeHead(401).end();
        const body = paths[url];
        if (body === undefined) return res.writeHead(404).end();
        res.end(body);
      });
      await new Promise<void>((r) => imds.listen(0, '127.0.0.1', r));
      endpoint = `http://127.0.0.1:${(imds.address() as AddressInfo).port}`;
    });
    after(() => imds.close());

    const log = createLogger({ level: 'silent' });
    const embeddedWrites: string[] = [];
    const db = {
      store: { get: () => undefined },
      txn: (t: { success: { put?: { key: string; value: string } }[] }) => (
        embeddedWrites.push(...t.success.map((o) => `${o.put?.key}=${o.put?.value}`)),
        Promise.resolve({ succeeded: true })
      ),
    } as unknown as ControlDb;

    it('reads the instance, its zone and region, and the ENI behind an interface', async () => {
      const ctx = await awsContext(new MetadataService({ endpoint }));
      assert.deepEqual(ctx.instance, { instanceId: 'i-0abc', zone: 'eu-west-1b', region: 'eu-west-1' });
      assert.equal(await ctx.ec2.config.region(), 'eu-west-1');
    });

    it('builds EBS volumes, secondary IPs of the ENI and Route 53 records beside the embedded ones', async () => {
      const config = {
        volumes: { kind: 'aws-ebs' as const },
        staticIps: { kind: 'aws' as const, iface: 'lo', prefix: 32 },
        dns: { kind: 'route53' as const, hostedZoneId: 'Z9' },
      };
      const p = await selectProviders({
        config,
        dataDir: '/var/lib/fc',
        nodeId: 'n1',
        cluster: 'c1',
        db,
        log,
        aws: () => awsContext(new MetadataService({ endpoint })),
      });
      assert.deepEqual([p.volumes.kind, p.ips.kind, p.dns.kind], ['aws-ebs', 'aws', 'route53']);

      // The volume is looked up for this cluster, and created in this instance's zone.
      ec2.on(DescribeVolumesCommand).resolves({ Volumes: [] });
      ec2.on(CreateVolumeCommand).rejects(new Error('stop here'));
      await assert.rejects(p.volumes.attach({ id: 'cache-0', sizeMiB: 1024 }, { node: 'n1', epoch: 1 }), /stop here/);
      assert.equal(ec2.commandCalls(DescribeVolumesCommand)[0].args[0].input.Filters![0].Values![0], 'c1');
      assert.equal(ec2.commandCalls(CreateVolumeCommand)[0].args[0].input.AvailabilityZone, 'eu-west-1b');

      // An address that is not on lo: the local step has nothing to remove, the ENI found by lo's MAC is asked.
      ec2.on(UnassignPrivateIpAddressesCommand).resolves({});
      await p.ips.remove('192.0.2.77');
      assert.equal(ec2.commandCalls(UnassignPrivateIpAddressesCommand)[0].args[0].input.NetworkInterfaceId, 'eni-0lo');

      r53.on(ChangeResourceRecordSetsCommand).resolves({});
      await p.dns.upsert('cache-0.cache.fc.test', '10.0.0.50');
      assert.deepEqual(embeddedWrites, ['/dns/cache-0.cache.fc.test=10.0.0.50'], 'the embedded server keeps answering');
      assert.equal(r53.commandCalls(ChangeResourceRecordSetsCommand)[0].args[0].input.HostedZoneId, 'Z9');
    });

    it('says what is missing when the metadata service does not answer or knows no such interface', async () => {
      await assert.rejects(
        awsContext(new MetadataService({ endpoint: 'http://127.0.0.1:9', retries: 0 })),
        /the AWS providers need the EC2 instance metadata service, which did not answer/,
      );
      const config = {
        volumes: { kind: 'local' as const },
        staticIps: { kind: 'aws' as const, iface: 'no-such-if0', prefix: 24 },
        dns: { kind: 'embedded' as const },
      };
      await assert.rejects(
        selectProviders({ config, dataDir: '/tmp/x', nodeId: 'n1', cluster: 'c1', db, log, aws: () => awsContext(new MetadataService({ endpoint })) }),
        /--static-ips aws:no-such-if0: this machine has no interface no-such-if0/,
      );
    });
  });
});
