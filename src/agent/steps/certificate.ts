// Certificate: a member that serves TLS finds its key, its certificate (for
// its names and address, signed by the cluster CA from this node's replica)
// and the CA in its volume before its container starts. A certificate that
// will do is kept; a new one is made when there is none, when the member's
// names or address changed, when the cluster's CA is another, or when its end
// is near (member-cert.ts), so a restart renews it. Written like the secret
// files: fsynced, renamed, the key readable by the member's user only.
import fs from 'node:fs';
import path from 'node:path';
import { ownerOf } from '../members.ts';
import { CA_FILE, CERT_FILE, KEY_FILE, certificateHosts, certificateLifetimeMs, whyRenew } from '../../security/member-cert.ts';
import { certificateFacts, generateKeyPair, issueMemberCert } from '../../security/pki.ts';
import { readClusterCa } from '../../security/tokens.ts';
import type { MemberStep } from './step.ts';
import { writeVolumeFile } from './files.ts';

export const certificate: MemberStep = {
  name: 'certificate',
  async start(node, run) {
    const { spec, volumeDir } = run;
    if (!spec.tls || !volumeDir) return true;
    const ca = readClusterCa(node.db.store);
    if (!ca) throw new Error("the cluster's CA is not in this node's replica yet");
    const dir = path.join(volumeDir, spec.tls.dir);
    const certFile = path.join(dir, CERT_FILE);
    const hosts = certificateHosts(spec, node.nodeIp);
    const lifetimeMs = certificateLifetimeMs(spec.tls);
    const current = fs.existsSync(certFile) ? fs.readFileSync(certFile, 'utf8') : undefined;
    const owner = ownerOf(spec);
    // The CA first: a client of the member (another member) may need the new one before the member has its new certificate.
    writeVolumeFile(path.join(dir, CA_FILE), ca.certPem, 0o644, owner);
    const why = whyRenew(current, ca.certPem, hosts, lifetimeMs, Date.now());
    if (!why) {
      run.certificateEnds = certificateFacts(current!, ca.certPem).notAfter.toISOString();
      return true;
    }
    const keys = generateKeyPair();
    const cert = await issueMemberCert(ca, { cn: spec.dnsName ?? `${spec.name}.${spec.service}`, publicKeyPem: keys.publicKeyPem, hosts, lifetimeMs });
    // The key before its certificate: a crash between the two leaves a key without its certificate, which the next start replaces.
    writeVolumeFile(path.join(dir, KEY_FILE), keys.keyPem, 0o600, owner);
    writeVolumeFile(certFile, cert, 0o644, owner);
    run.certificateEnds = certificateFacts(cert, ca.certPem).notAfter.toISOString();
    node.log.info({ member: `${spec.service}/${spec.name}`, why, hosts }, 'made the member a new certificate');
    return true;
  },
};
