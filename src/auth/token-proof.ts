import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A fresh challenge per connection, so a recorded proof is worthless on the next one. */
export function makeNonce(): string {
  return randomBytes(16).toString('hex');
}

/** HMAC-SHA256 of the nonce under the shared token: proves the token without sending it. */
export function proofFor(token: string, nonce: string): string {
  return createHmac('sha256', token).update(nonce).digest('hex');
}

export function verifyProof(token: string, nonce: string, proof: string | undefined): boolean {
  if (proof === undefined) return false;
  const expected = Buffer.from(proofFor(token, nonce), 'hex');
  const given = Buffer.from(proof, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
