import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** A fresh challenge per connection, so a recorded proof is worthless on the next one. */
export function makeNonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * What one connection's proofs are made over: keying material exported from its TLS session
 * (empty in plaintext), which differs on each leg of a man in the middle, and both nonces.
 */
export interface ProofTranscript {
  binding: Buffer;
  receiverNonce: string;
  senderNonce: string;
}

/** Domain separation: the sender's proof is never valid as the receiver's, nor for another version. */
const SENDER = 'ft-token-sender-v5';
const RECEIVER = 'ft-token-receiver-v5';

function proof(token: string, role: string, { binding, receiverNonce, senderNonce }: ProofTranscript): string {
  const length = Buffer.from([binding.length]);
  return createHmac('sha256', token).update(`${role}\0`).update(length).update(binding).update(`${receiverNonce}\0${senderNonce}`).digest('hex');
}

function matches(expected: string, given: string | undefined): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(expected, 'hex');
  const b = Buffer.from(given, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** HMAC-SHA256 under the shared token: proves the token without sending it, on this channel only. */
export function senderProof(token: string, transcript: ProofTranscript): string {
  return proof(token, SENDER, transcript);
}

export function receiverProof(token: string, transcript: ProofTranscript): string {
  return proof(token, RECEIVER, transcript);
}

export function verifySenderProof(token: string, transcript: ProofTranscript, given: string | undefined): boolean {
  return matches(senderProof(token, transcript), given);
}

export function verifyReceiverProof(token: string, transcript: ProofTranscript, given: string | undefined): boolean {
  return matches(receiverProof(token, transcript), given);
}
