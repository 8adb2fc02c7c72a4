/**
 * A receiver's identity: an ECDSA P-256 key pair and a self-signed certificate over it, what
 * its TLS server presents. P-256 rather than Ed25519 because browsers (the upload page) accept
 * only RSA and ECDSA certificates. The fingerprint is of the key, so a renewed certificate
 * keeps it.
 */
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import selfsigned from 'selfsigned';
import { FtError } from '../errors.js';
import { fingerprintOfCertificate } from './fingerprint.js';

export interface Identity {
  /** PEM, PKCS#8 private key. */
  readonly key: string;
  /** PEM certificate over the key. */
  readonly cert: string;
  /** Full fingerprint of the key (fingerprint.ts). */
  readonly fingerprint: string;
}

/** A certificate is made for ten years and renewed (same key) when less than this is left. */
export const CERTIFICATE_DAYS = 3650;
export const RENEW_WITHIN_DAYS = 30;
const DAY_MS = 86_400_000;

/** A new key pair and a certificate for it. */
export async function generateIdentity(): Promise<Identity> {
  return certify(undefined);
}

/** A new certificate over the same key (when the old one nears its end). */
export async function renewCertificate(identity: Identity): Promise<Identity> {
  return certify(identity.key);
}

async function certify(existingKey: string | undefined): Promise<Identity> {
  const notBeforeDate = new Date(Date.now() - DAY_MS); // a peer whose clock lags a little still sees it as valid
  const notAfterDate = new Date(notBeforeDate.getTime() + CERTIFICATE_DAYS * DAY_MS);
  let keyPair: { privateKey: string; publicKey: string } | undefined;
  if (existingKey !== undefined) {
    const publicKey = createPublicKey(createPrivateKey(existingKey)).export({ type: 'spki', format: 'pem' }) as string;
    keyPair = { privateKey: existingKey, publicKey };
  }
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'ft receiver' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate,
    keyPair,
  });
  return identityFrom(pems.private, pems.cert);
}

/**
 * Checks that a key and certificate belong together (a library user may bring their own) and
 * returns the identity, or throws IDENTITY_INVALID with a one-line reason.
 */
export function identityFrom(key: string, cert: string): Identity {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new FtError('IDENTITY_INVALID', `the certificate cannot be read: ${(error as Error).message}`, {}, { cause: error });
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw new FtError('IDENTITY_INVALID', `the private key cannot be read: ${(error as Error).message}`, {}, { cause: error });
  }
  if (!matches) throw new FtError('IDENTITY_INVALID', 'the private key does not belong to the certificate');
  return { key, cert, fingerprint: fingerprintOfCertificate(certificate) };
}

/** Whether the certificate ends within RENEW_WITHIN_DAYS. */
export function needsRenewal(identity: Identity, now = Date.now()): boolean {
  return Date.parse(new X509Certificate(identity.cert).validTo) - now < RENEW_WITHIN_DAYS * DAY_MS;
}
