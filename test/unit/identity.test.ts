import { describe, expect, it } from 'vitest';
import { generateIdentity, identityFrom, needsRenewal, renewCertificate } from '../../src/auth/identity.js';
import { fingerprintMatches, FINGERPRINT_PATTERN, parseFingerprint, shortFingerprint } from '../../src/auth/fingerprint.js';
import { X509Certificate } from 'node:crypto';

describe('receiver identity', () => {
  it('makes an ECDSA P-256 key with a ten-year self-signed certificate, and a renewal keeps the fingerprint', async () => {
    const identity = await generateIdentity();
    expect(identity.fingerprint).toMatch(FINGERPRINT_PATTERN);
    const certificate = new X509Certificate(identity.cert);
    expect(certificate.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(certificate.verify(certificate.publicKey)).toBe(true);
    expect(needsRenewal(identity)).toBe(false);
    expect(needsRenewal(identity, Date.now() + 3640 * 86_400_000)).toBe(true);
    const renewed = await renewCertificate(identity);
    expect(renewed.cert).not.toBe(identity.cert);
    expect(renewed.fingerprint).toBe(identity.fingerprint);
    expect((await generateIdentity()).fingerprint).not.toBe(identity.fingerprint);
  });

  it('refuses a key that does not belong to the certificate, and unreadable ones', async () => {
    const [a, b] = await Promise.all([generateIdentity(), generateIdentity()]);
    expect(() => identityFrom(b.key, a.cert)).toThrow(expect.objectContaining({ code: 'IDENTITY_INVALID' }));
    expect(() => identityFrom(a.key, 'not a certificate')).toThrow(expect.objectContaining({ code: 'IDENTITY_INVALID' }));
    expect(() => identityFrom('not a key', a.cert)).toThrow(expect.objectContaining({ code: 'IDENTITY_INVALID' }));
    expect(identityFrom(a.key, a.cert).fingerprint).toBe(a.fingerprint);
  });
});

describe('fingerprints', () => {
  const full = 'MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43UOV3HO6DZPIYTEMZUGU3D';
  it('shows the first 160 bits in groups of four, and matches what people type against the full form', () => {
    expect(full).toMatch(FINGERPRINT_PATTERN);
    const short = shortFingerprint(full);
    expect(short).toBe('MFRG-GZDF-MZTW-Q2LK-NNWG-23TP-OBYX-E43U');
    expect(fingerprintMatches(full, parseFingerprint(short.toLowerCase()))).toBe(true);
    expect(fingerprintMatches(full, parseFingerprint(` ${full} `))).toBe(true);
    expect(fingerprintMatches(full, parseFingerprint(short.replace('MFRG', 'MFRH')))).toBe(false);
  });

  it('refuses what is too short to be safe or not base32', () => {
    for (const text of ['', 'MFRG-GZDF', full.slice(0, 31), `${full}A`, full.replace('M', '1'), full.replace('M', '0')]) {
      expect(() => parseFingerprint(text)).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
    expect(fingerprintMatches(full, full.slice(0, 31))).toBe(false);
  });
});
