// The cluster's certificate authority and node certificates. Keys are ECDSA
// P-256 made by node:crypto; certificates are built by @peculiar/x509 so that
// no ASN.1 is written here. A node certificate names its node id in the CN:
// that is the identity peers check, not host names, since nodes are reached
// by whatever address they advertise.
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const CA_DAYS = 3650;
const NODE_DAYS = 1825;

export interface KeyPairPem {
  keyPem: string;
  publicKeyPem: string;
}

export interface CaPem {
  certPem: string;
  keyPem: string;
}

/** What a node needs for mutual TLS. */
export interface NodeTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export function generateKeyPair(): KeyPairPem {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

async function importKeys(keyPem: string): Promise<CryptoKeyPair> {
  const priv = createPrivateKey(keyPem);
  const pub = createPublicKey(priv);
  const subtle = webcrypto.subtle;
  return {
    privateKey: await subtle.importKey('pkcs8', priv.export({ type: 'pkcs8', format: 'der' }), ALG, true, ['sign']),
    publicKey: await importPublicKey(pub.export({ type: 'spki', format: 'pem' }).toString()),
  };
}

async function importPublicKey(publicKeyPem: string): Promise<CryptoKey> {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return await webcrypto.subtle.importKey('spki', der, ALG, true, ['verify']);
}

function serial(): string {
  // Positive, 16 bytes: unique enough that two certificates never share one.
  const b = randomBytes(16);
  b[0] = b[0] & 0x7f;
  return b.toString('hex');
}

export async function createCa(clusterName = 'firecampd'): Promise<CaPem> {
  const kp = generateKeyPair();
  const keys = await importKeys(kp.keyPem);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${clusterName} cluster CA ${randomBytes(4).toString('hex')}, O=firecampd`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + CA_DAYS * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem').trimEnd() + '\n', keyPem: kp.keyPem };
}

export interface NodeCertRequest {
  nodeId: string;
  publicKeyPem: string;
  /** Addresses and names the node may be reached by (for clients that check them). */
  hosts: string[];
}

/** Sign a node certificate, usable for both ends of a TLS connection. */
/**
 * The name every node's certificate carries besides its own address and name, and that every node's DNS server
 * answers with the addresses of the nodes holding their leases: one name that reaches a live node (Prometheus's
 * discovery, scripts), verified against the cluster CA like any node's own.
 */
export const clusterApiName = (domain: string) => `api.${domain}`;

export async function issueNodeCert(ca: CaPem, req: NodeCertRequest): Promise<string> {
  return issueCert(ca, { cn: req.nodeId, publicKeyPem: req.publicKeyPem, hosts: [...req.hosts, '127.0.0.1', '::1', 'localhost'], days: NODE_DAYS });
}

/**
 * Sign a certificate for a service member: its DNS names and address (clients verify the name they dialled),
 * `lifetimeMs` long. Usable for both ends, since members are also each other's clients (replication, quorums).
 */
export async function issueMemberCert(ca: CaPem, req: { cn: string; publicKeyPem: string; hosts: string[]; lifetimeMs: number }): Promise<string> {
  return issueCert(ca, { cn: req.cn, publicKeyPem: req.publicKeyPem, hosts: req.hosts, days: req.lifetimeMs / DAY_MS });
}

async function issueCert(ca: CaPem, req: { cn: string; publicKeyPem: string; hosts: string[]; days: number }): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKeys = await importKeys(ca.keyPem);
  const publicKey = await importPublicKey(req.publicKeyPem);
  const hosts = [...new Set(req.hosts)].filter((h) => h !== '');
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.cn}, O=firecampd`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + req.days * DAY_MS),
    publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: net.isIP(h) ? ('ip' as const) : ('dns' as const), value: h }))),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return cert.toString('pem').trimEnd() + '\n';
}

/** A certificate as a renewal looks at it: who signed it, the names it holds, when it ends. */
export function certificateFacts(certPem: string, caPem: string): { issuedByCa: boolean; hosts: string[]; notAfter: Date } {
  const cert = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  const hosts = (cert.subjectAltName ?? '')
    .split(', ')
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ''))
    .filter(Boolean);
  return { issuedByCa: cert.checkIssued(ca) && cert.verify(ca.publicKey), hosts, notAfter: new Date(cert.validTo) };
}

/** The SHA-256 of the CA certificate's DER: what join tokens pin. */
export function caDigest(caPem: string): string {
  return new X509Certificate(caPem).fingerprint256.replaceAll(':', '').toLowerCase();
}

/** The node id a certificate was issued to, if it was issued by `caPem`. */
export function nodeIdOf(certPem: string, caPem: string): string | undefined {
  const cert = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return undefined;
  return /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
}

export const TLS_DIR = 'tls';
const FILES = { caPem: 'ca.crt', certPem: 'node.crt', keyPem: 'node.key' } as const;

/** The node's TLS material in its data dir, or undefined before it has any. */
export function loadNodeTls(dataDir: string): NodeTls | undefined {
  const dir = path.join(dataDir, TLS_DIR);
  try {
    return {
      caPem: fs.readFileSync(path.join(dir, FILES.caPem), 'utf8'),
      certPem: fs.readFileSync(path.join(dir, FILES.certPem), 'utf8'),
      keyPem: fs.readFileSync(path.join(dir, FILES.keyPem), 'utf8'),
    };
  } catch {
    return undefined;
  }
}

export function saveNodeTls(dataDir: string, tls: NodeTls): void {
  const dir = path.join(dataDir, TLS_DIR);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The key first, the certificate last: loadNodeTls sees all three or nothing usable.
  writePrivate(path.join(dir, FILES.keyPem), tls.keyPem);
  writePrivate(path.join(dir, FILES.caPem), tls.caPem);
  writePrivate(path.join(dir, FILES.certPem), tls.certPem);
}

/** A node's private key, kept across join attempts so that a retried join asks for the same certificate. */
export function pendingKey(dataDir: string): KeyPairPem {
  const file = path.join(dataDir, TLS_DIR, 'pending.key');
  if (fs.existsSync(file)) {
    const keyPem = fs.readFileSync(file, 'utf8');
    return { keyPem, publicKeyPem: createPublicKey(keyPem).export({ type: 'spki', format: 'pem' }).toString() };
  }
  const kp = generateKeyPair();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writePrivate(file, kp.keyPem);
  return kp;
}

export function clearPendingKey(dataDir: string): void {
  fs.rmSync(path.join(dataDir, TLS_DIR, 'pending.key'), { force: true });
}

/** Write a file only its owner can read, atomically and durably. */
export function writePrivate(file: string, content: string): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** A digest of a public key, to recognise a node that retries its join with the same key. */
export function publicKeyDigest(publicKeyPem: string): string {
  const der = createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}
