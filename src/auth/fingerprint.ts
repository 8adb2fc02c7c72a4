/**
 * A receiver's fingerprint: SHA-256 of its public key (the DER SubjectPublicKeyInfo of its TLS
 * certificate), so that a renewed certificate over the same key keeps it.
 *
 * Written in base32 (RFC 4648 alphabet, no padding: no 0/O or 1/l to confuse), uppercase:
 *  - full:  all 256 bits, 52 characters (beacons, the trust file, the protocol);
 *  - short: the first 160 bits, 32 characters in groups of four (ABCD-EFGH-…), what people
 *           read and compare; 160 bits are far beyond finding another key with the same start.
 * Anything a person types may be either, in any case, with or without dashes and spaces.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { FtError } from '../errors.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
export const FULL_FINGERPRINT_LENGTH = 52;
export const SHORT_FINGERPRINT_LENGTH = 32;
/** A full fingerprint as it travels and is stored. */
export const FINGERPRINT_PATTERN = /^[A-Z2-7]{52}$/;

function base32(bytes: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** The full fingerprint of a DER SubjectPublicKeyInfo. */
export function fingerprintOfPublicKey(spkiDer: Buffer): string {
  return base32(createHash('sha256').update(spkiDer).digest());
}

/** The full fingerprint of a certificate's public key (PEM, DER or parsed). */
export function fingerprintOfCertificate(certificate: X509Certificate | string | Buffer): string {
  const parsed = certificate instanceof X509Certificate ? certificate : new X509Certificate(certificate);
  return fingerprintOfPublicKey(parsed.publicKey.export({ type: 'spki', format: 'der' }));
}

/** The short form people compare: ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567. */
export function shortFingerprint(full: string): string {
  return (full.slice(0, SHORT_FINGERPRINT_LENGTH).match(/.{4}/g) ?? []).join('-');
}

/**
 * What a person or script typed (short or full, any case, dashes or spaces), canonical: at
 * least the short form's 32 characters of a full fingerprint. Throws USAGE otherwise.
 */
export function parseFingerprint(text: string): string {
  const canonical = text.replace(/[\s:-]/g, '').toUpperCase();
  const valid = /^[A-Z2-7]+$/.test(canonical) && canonical.length >= SHORT_FINGERPRINT_LENGTH && canonical.length <= FULL_FINGERPRINT_LENGTH;
  if (!valid) {
    throw new FtError(
      'USAGE',
      `"${text.slice(0, 80)}" is not a receiver fingerprint: expected ${SHORT_FINGERPRINT_LENGTH} to ${FULL_FINGERPRINT_LENGTH} letters A-Z and digits 2-7, as \`ft serve\` prints it`,
    );
  }
  return canonical;
}

/** Whether a full fingerprint is the one a (possibly short) parsed fingerprint names. */
export function fingerprintMatches(full: string, expected: string): boolean {
  return expected.length >= SHORT_FINGERPRINT_LENGTH && full.startsWith(expected);
}
