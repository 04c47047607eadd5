// DNS records in an AWS Route 53 hosted zone instead of the embedded server.
// Tested against aws-sdk-client-mock.
import { ChangeResourceRecordSetsCommand, ListResourceRecordSetsCommand, type Route53Client } from '@aws-sdk/client-route-53';
import type { DnsProvider } from './types.ts';

export class Route53Dns implements DnsProvider {
  readonly kind = 'route53' as const;

  constructor(
    private readonly route53: Route53Client,
    private readonly hostedZoneId: string,
    private readonly ttl = 5,
  ) {}

  async upsert(name: string, ip: string): Promise<void> {
    await this.route53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: this.hostedZoneId,
        ChangeBatch: { Changes: [{ Action: 'UPSERT', ResourceRecordSet: { Name: `${name}.`, Type: 'A', TTL: this.ttl, ResourceRecords: [{ Value: ip }] } }] },
      }),
    );
  }

  async remove(name: string, ip: string): Promise<void> {
    // Route 53 deletes a record only when given its current value and TTL.
    const r = await this.route53.send(
      new ListResourceRecordSetsCommand({ HostedZoneId: this.hostedZoneId, StartRecordName: `${name}.`, StartRecordType: 'A', MaxItems: 1 }),
    );
    const current = r.ResourceRecordSets?.find((s) => s.Name === `${name}.` && s.Type === 'A');
    // Route 53 refuses the DELETE if the record changed after this read: a change made meanwhile stays too.
    if (!current || current.ResourceRecords?.length !== 1 || current.ResourceRecords[0].Value !== ip) return;
    await this.route53.send(
      new ChangeResourceRecordSetsCommand({ HostedZoneId: this.hostedZoneId, ChangeBatch: { Changes: [{ Action: 'DELETE', ResourceRecordSet: current }] } }),
    );
  }
}
