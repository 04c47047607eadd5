// Static IPs as secondary private IPs of this instance's network interface:
// AWS moves the address (AllowReassignment) and routes it here; then the
// local step brings it up on the interface. Tested against aws-sdk-client-mock.
import { AssignPrivateIpAddressesCommand, UnassignPrivateIpAddressesCommand, type EC2Client } from '@aws-sdk/client-ec2';
import type { IpProvider } from './types.ts';

export class AwsSecondaryIps implements IpProvider {
  readonly kind = 'aws' as const;

  constructor(
    private readonly ec2: EC2Client,
    private readonly networkInterfaceId: string,
    private readonly local: IpProvider,
  ) {}

  async add(ip: string): Promise<void> {
    await this.ec2.send(
      new AssignPrivateIpAddressesCommand({ NetworkInterfaceId: this.networkInterfaceId, PrivateIpAddresses: [ip], AllowReassignment: true }),
    );
    await this.local.add(ip);
  }

  async remove(ip: string): Promise<void> {
    await this.local.remove(ip);
    try {
      await this.ec2.send(new UnassignPrivateIpAddressesCommand({ NetworkInterfaceId: this.networkInterfaceId, PrivateIpAddresses: [ip] }));
    } catch (err) {
      // Already moved to another instance, or never here: nothing to undo.
      if ((err as { name?: string }).name !== 'InvalidParameterValue') throw err;
    }
  }
}
