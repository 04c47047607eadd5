// The node's volume, static-IP and DNS providers, as its configuration names
// them. The AWS ones share one context (instance, region, SDK clients), made
// only when one of them is asked for.
import path from 'node:path';
import type { NodeConfig } from '../../config.ts';
import type { ControlDb } from '../../controldb/controldb.ts';
import type { Logger } from '../../log.ts';
import { EbsVolumes } from './aws-ebs.ts';
import { AwsSecondaryIps } from './aws-ip.ts';
import { awsContext, networkInterfaceId, type AwsContext } from './aws.ts';
import { BlockMounter } from './block-mount.ts';
import { EmbeddedDns } from './embedded-dns.ts';
import { LocalIps, NoIps } from './local-ip.ts';
import { LocalVolumes } from './local-volume.ts';
import { LoopVolumes } from './loop-volume.ts';
import { Route53Dns } from './route53.ts';
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
  const aws = () => (ctx ??= (o.aws ?? awsContext)());

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
          ? await aws().then(
              (a) =>
                new EbsVolumes({
                  ec2: a.ec2,
                  instanceId: a.instance.instanceId,
                  zone: a.instance.zone,
                  cluster: o.cluster,
                  mounter: new BlockMounter(mountRoot(o.dataDir)),
                }),
            )
          : new LocalVolumes(path.join(o.dataDir, 'volumes')),
    ips:
      staticIps.kind === 'aws'
        ? await aws().then(async (a) => new AwsSecondaryIps(a.ec2, await networkInterfaceId(a.metadata, staticIps.iface), local))
        : local,
    dns: dns.kind === 'route53' ? new BothDns(embedded, await aws().then((a) => new Route53Dns(a.route53, dns.hostedZoneId))) : embedded,
  };
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

  async remove(name: string): Promise<void> {
    await this.embedded.remove(name);
    await this.route53.remove(name);
  }
}
