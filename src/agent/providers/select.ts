// The node's volume, static-IP and DNS providers, as its configuration names
// them. The AWS ones share one context (instance, region, SDK clients), made
// only when one of them is asked for.
import path from 'node:path';
import type { NodeConfig } from '../../config.ts';
import type { ControlDb } from '../../controldb/controldb.ts';
import type { Logger } from '../../log.ts';
import type { AwsContext } from './aws.ts';
import { BlockMounter } from './block-mount.ts';
import { EmbeddedDns } from './embedded-dns.ts';
import { LocalIps, NoIps } from './local-ip.ts';
import { LocalVolumes } from './local-volume.ts';
import { LoopVolumes } from './loop-volume.ts';
import type { DnsProvider, IpProvider, VolumeProvider } from './types.ts';

export interface Providers {
  volumes: VolumeProvider;
  ips: IpProvider;
  dns: DnsProvider;
}

export interface SelectOptions {
  config: Pick<NodeConfig, 'volumes' | 'staticIps' | 'dns'>;
  dataDir: string;
  nodeId: string;
  /** The cluster's id, which tags its EBS volumes. */
  cluster: string;
  db: ControlDb;
  log: Logger;
  /** Where the AWS context comes from (tests give their own). */
  aws?: () => Promise<AwsContext>;
}

/** Where member volumes are mounted on a node; the watchdog unmounts everything under it. */
export const mountRoot = (dataDir: string) => path.join(dataDir, 'mnt');

export async function selectProviders(o: SelectOptions): Promise<Providers> {
  const { volumes, staticIps, dns } = o.config;
  let ctx: Promise<AwsContext> | undefined;
  const aws = () => (ctx ??= o.aws ? o.aws() : import('./aws.ts').then((m) => m.awsContext()));

  const local =
    staticIps.kind === 'none'
      ? new NoIps()
      : new LocalIps(staticIps.iface, staticIps.prefix, (err) => o.log.warn({ err: err.message }, 'gratuitous ARP failed'));
  const embedded = new EmbeddedDns(o.db);
  return {
    volumes:
      volumes.kind === 'loop'
        ? new LoopVolumes(volumes.dir, mountRoot(o.dataDir), o.nodeId)
        : volumes.kind === 'aws-ebs'
          ? await ebsVolumes(await aws(), o)
          : new LocalVolumes(path.join(o.dataDir, 'volumes')),
    ips: staticIps.kind === 'aws' ? await awsIps(await aws(), staticIps.iface, local) : local,
    dns: dns.kind === 'route53' ? new BothDns(embedded, await route53Dns(await aws(), dns.hostedZoneId)) : embedded,
  };
}

// The AWS providers' modules are imported only when the configuration names one: they load the AWS SDK.

async function ebsVolumes(a: AwsContext, o: SelectOptions): Promise<VolumeProvider> {
  const { EbsVolumes } = await import('./aws-ebs.ts');
  return new EbsVolumes({
    ec2: a.ec2,
    instanceId: a.instance.instanceId,
    zone: a.instance.zone,
    cluster: o.cluster,
    mounter: new BlockMounter(mountRoot(o.dataDir)),
  });
}

async function awsIps(a: AwsContext, iface: string, local: IpProvider): Promise<IpProvider> {
  const [{ AwsSecondaryIps }, { networkInterfaceId }] = await Promise.all([import('./aws-ip.ts'), import('./aws.ts')]);
  return new AwsSecondaryIps(a.ec2, await networkInterfaceId(a.metadata, iface), local);
}

async function route53Dns(a: AwsContext, hostedZoneId: string): Promise<DnsProvider> {
  const { Route53Dns } = await import('./route53.ts');
  return new Route53Dns(a.route53, hostedZoneId);
}

/**
 * With Route 53 the embedded server still answers on every node (and serves
 * SRV records), so names resolve the same from nodes and from the VPC.
 */
class BothDns implements DnsProvider {
  readonly kind = 'route53' as const;

  constructor(
    private readonly embedded: DnsProvider,
    private readonly route53: DnsProvider,
  ) {}

  async upsert(name: string, ip: string): Promise<void> {
    await this.embedded.upsert(name, ip);
    await this.route53.upsert(name, ip);
  }

  async remove(name: string, ip: string): Promise<void> {
    await this.embedded.remove(name, ip);
    await this.route53.remove(name, ip);
  }
}
