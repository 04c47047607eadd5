// Members' certificates: the agent's certificate step, on a real replica's
// store and a real directory standing in for the member's volume, and the
// rules that decide when a certificate is made anew. What is checked is what
// a client would: the chain to the cluster CA, the names, the key's mode.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { MemberSpec } from '../src/agent/members.ts';
import { certificate } from '../src/agent/steps/certificate.ts';
import type { MemberRun, NodeContext } from '../src/agent/steps/step.ts';
import { createLogger } from '../src/log.ts';
import { renewalDue, whyRenew } from '../src/security/member-cert.ts';
import { createCa, generateKeyPair, issueMemberCert } from '../src/security/pki.ts';
import { SECRET_PREFIX } from '../src/security/tokens.ts';
import { tempDir } from './helpers/proc.ts';
import { replica } from './helpers/replica.ts';

const HOUR = 3_600_000;

const spec = (over: Partial<MemberSpec> = {}): MemberSpec => ({
  service: 'pg',
  name: 'pg-1',
  node: 'a',
  epoch: 1,
  image: 'postgres:15',
  dnsName: 'pg-1.pg.fc.test',
  ip: '10.77.0.201',
  tls: { dir: 'tls', names: ['primary.pg.fc.test'] },
  ...over,
});

async function nodeWithCa() {
  const { db, put } = replica();
  const ca = await createCa();
  await put(`${SECRET_PREFIX}ca`, ca);
  const node = { db, nodeIp: '10.77.0.11', log: createLogger({ level: 'error' }) } as unknown as NodeContext;
  return { node, ca, put };
}

describe("members' certificates", () => {
  it('writes the key (0600), a certificate from the cluster CA for the names and address, and the CA; a second start keeps them', async () => {
    const { node, ca } = await nodeWithCa();
    const volumeDir = tempDir();
    const run: MemberRun = { spec: spec(), volumeDir };
    assert.equal(await certificate.start(node, run), true);
    const file = (f: string) => path.join(volumeDir, 'tls', f);
    assert.equal(fs.statSync(file('server.key')).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(file('ca.crt'), 'utf8'), ca.certPem);
    const cert = new X509Certificate(fs.readFileSync(file('server.crt')));
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the cluster CA');
    assert.ok(cert.checkHost('pg-1.pg.fc.test') && cert.checkHost('primary.pg.fc.test') && cert.checkIP('10.77.0.201'), cert.subjectAltName);
    assert.ok(cert.checkPrivateKey(createPrivateKey(fs.readFileSync(file('server.key')))), "the key is the certificate's");
    const first = fs.readFileSync(file('server.crt'), 'utf8');
    await certificate.start(node, run);
    assert.equal(fs.readFileSync(file('server.crt'), 'utf8'), first, 'kept: still good');
    // The member moved to another address: a certificate that names the new one.
    await certificate.start(node, { spec: spec({ ip: '10.77.0.209' }), volumeDir });
    assert.ok(new X509Certificate(fs.readFileSync(file('server.crt'))).checkIP('10.77.0.209'));
  });

  it('is made anew at a start for another CA, missing names, or in the last half of its life; the catalog restarts for it in the last third', async () => {
    const { ca } = await nodeWithCa();
    const other = await createCa();
    const hosts = ['pg-1.pg.fc.test', '10.77.0.201'];
    const make = async (c: typeof ca, lifetimeMs: number, h = hosts) => {
      const k = generateKeyPair();
      return issueMemberCert(c, { cn: 'pg-1', publicKeyPem: k.publicKeyPem, hosts: h, lifetimeMs });
    };
    const now = Date.now();
    const year = 365 * 24 * HOUR;
    assert.equal(whyRenew(undefined, ca.certPem, hosts, year, now), 'none yet');
    assert.equal(whyRenew(await make(ca, year), ca.certPem, hosts, year, now), undefined);
    assert.equal(whyRenew(await make(other, year), ca.certPem, hosts, year, now), "not signed by the cluster's CA");
    assert.equal(whyRenew(await make(ca, year, [hosts[0]]), ca.certPem, hosts, year, now), 'lacks 10.77.0.201');
    const short = await make(ca, 3 * HOUR);
    assert.equal(whyRenew(short, ca.certPem, hosts, 3 * HOUR, now + 1.4 * HOUR), undefined, 'more than half left: kept');
    assert.match(whyRenew(short, ca.certPem, hosts, 3 * HOUR, now + 1.6 * HOUR) ?? '', /^ends /, 'less than half left: made anew');
    assert.equal(renewalDue(new Date(now + 3 * HOUR), 3 * HOUR, now + 1.9 * HOUR), false, 'more than a third left: no restart yet');
    assert.equal(renewalDue(new Date(now + 3 * HOUR), 3 * HOUR, now + 2.1 * HOUR), true, 'less than a third left: the catalog restarts');
  });

  it('refuses to start the member before the CA is in the replica, rather than serve without it', async () => {
    const { db } = replica();
    const node = { db, nodeIp: '10.77.0.11', log: createLogger({ level: 'error' }) } as unknown as NodeContext;
    await assert.rejects(certificate.start(node, { spec: spec(), volumeDir: tempDir() }), /cluster's CA is not in this node's replica/);
    assert.equal(await certificate.start(node, { spec: spec({ tls: undefined }), volumeDir: tempDir() }), true, 'a member without TLS needs none');
  });
});
