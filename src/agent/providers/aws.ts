// What an AWS provider needs to know of the instance it runs on, read from
// the EC2 instance metadata service (IMDSv2, through the SDK's own client),
// and the SDK clients for its region. Credentials come from the SDK's default
// chain (the instance profile on EC2). AWS is out of reach from CI: this is
// tested against a local stand-in for the metadata service and
// aws-sdk-client-mock.
import fs from 'node:fs';
import { EC2Client } from '@aws-sdk/client-ec2';
import { Route53Client } from '@aws-sdk/client-route-53';
import { MetadataService } from '@aws-sdk/ec2-metadata-service';

/** The part of the metadata service firecampd reads. */
export interface InstanceMetadata {
  request(path: string, options: { method?: string; headers?: Record<string, string> }): Promise<string>;
}

export interface Instance {
  instanceId: string;
  /** The availability zone, e.g. us-east-1a: EBS volumes and subnets live in one. */
  zone: string;
  region: string;
}

export interface AwsContext {
  instance: Instance;
  ec2: EC2Client;
  route53: Route53Client;
  metadata: InstanceMetadata;
}

const get = (md: InstanceMetadata, path: string) => md.request(`/latest/meta-data/${path}`, {}).then((s) => s.trim());

export async function describeInstance(md: InstanceMetadata): Promise<Instance> {
  const [instanceId, zone] = await Promise.all([get(md, 'instance-id'), get(md, 'placement/availability-zone')]);
  // placement/region is newer than the zone; the zone minus its letter is the region everywhere AWS has one.
  const region = await get(md, 'placement/region').catch(() => zone.replace(/[a-z]$/, ''));
  return { instanceId, zone, region };
}

/** The ENI behind a local interface: found by the interface's MAC address. */
export async function networkInterfaceId(md: InstanceMetadata, iface: string, sysfs = '/sys/class/net'): Promise<string> {
  let mac: string;
  try {
    mac = fs.readFileSync(`${sysfs}/${iface}/address`, 'utf8').trim().toLowerCase();
  } catch {
    throw new Error(`--static-ips aws:${iface}: this machine has no interface ${iface}`);
  }
  try {
    return await get(md, `network/interfaces/macs/${mac}/interface-id`);
  } catch (err) {
    throw new Error(`--static-ips aws:${iface}: the instance metadata knows no network interface with MAC ${mac} (${(err as Error).message})`, { cause: err });
  }
}

/** Everything the AWS providers share, for the instance this runs on. */
export async function awsContext(md: InstanceMetadata = new MetadataService({ httpOptions: { timeout: 2000 } })): Promise<AwsContext> {
  let instance: Instance;
  try {
    instance = await describeInstance(md);
  } catch (err) {
    throw new Error(`the AWS providers need the EC2 instance metadata service, which did not answer: ${(err as Error).message}`, { cause: err });
  }
  const region = process.env.AWS_REGION ?? instance.region;
  return { instance, metadata: md, ec2: new EC2Client({ region }), route53: new Route53Client({ region }) };
}
