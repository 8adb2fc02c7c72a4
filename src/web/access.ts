/**
 * Who may use the upload page and the tus endpoint. With no token, everyone (as with the TCP
 * protocol). With a token, a request needs a session cookie, got by redeeming a one-time access
 * code (the link `ft serve` prints carries one) or the token itself, or the token as a bearer
 * (what scripts with a tus client send). Sessions are signed, not stored: they survive a restart
 * of the receiver (a resume after it needs no new code), and a new token ends every one of them.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export type Credential = { code: string } | { token: string };

export interface AccessOptions {
  token?: string;
  /** 32 bytes kept by the receiver from run to run: signs sessions. */
  secret: Buffer;
  /** How long a session lasts, in ms. @default 12 hours */
  sessionTtlMs?: number;
  /** How long an access code stays good if nobody uses it, in ms. @default 24 hours */
  codeTtlMs?: number;
  /** Wall-clock ms (sessions carry their expiry). */
  now?: () => number;
}

export const SESSION_COOKIE = 'ft_session';
const SESSION_VERSION = 'v1';
/** Codes not yet used, at most: the oldest goes first. */
const MAX_CODES = 16;
/** 12 letters of base32: 60 bits, far beyond guessing at one try per slowed-down answer. */
const CODE_LENGTH = 12;
const CODE_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';
/** Longest credential looked at: anything longer is wrong without hashing megabytes. */
const MAX_CREDENTIAL_CHARS = 1024;

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest();

export class WebAccess {
  private readonly codes = new Map<string, number>();
  private readonly sessionKey: Buffer;
  private readonly tokenDigest: Buffer | undefined;
  private readonly now: () => number;
  private readonly sessionTtlMs: number;
  private readonly codeTtlMs: number;

  constructor(options: AccessOptions) {
    this.tokenDigest = options.token === undefined ? undefined : sha256(options.token);
    // Bound to the token: sessions made under another token do not open this receiver.
    this.sessionKey = createHmac('sha256', options.secret)
      .update('ft-web-session|')
      .update(this.tokenDigest ?? Buffer.alloc(0))
      .digest();
    this.now = options.now ?? Date.now;
    this.sessionTtlMs = options.sessionTtlMs ?? 12 * 3600_000;
    this.codeTtlMs = options.codeTtlMs ?? 24 * 3600_000;
  }

  /** No token: nothing is asked of anyone. */
  get open(): boolean {
    return this.tokenDigest === undefined;
  }

  get sessionSeconds(): number {
    return Math.floor(this.sessionTtlMs / 1000);
  }

  /** A fresh one-time access code (only with a token). */
  newCode(): string {
    if (this.open) throw new Error('an open receiver has no access codes');
    const bytes = randomBytes(CODE_LENGTH);
    let code = '';
    for (const byte of bytes) code += CODE_ALPHABET[byte & 31];
    if (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value!);
    this.codes.set(codeDigest(code), this.now() + this.codeTtlMs);
    return code;
  }

  /**
   * A session for a valid code (which is then spent) or the token; undefined when it is wrong,
   * used or expired (the caller slows the next try down).
   */
  redeem(credential: Credential): { session: string; via: 'code' | 'token' } | undefined {
    if (this.open) return undefined;
    if ('code' in credential) {
      const digest = codeDigest(credential.code);
      const expires = this.codes.get(digest);
      if (expires === undefined) return undefined;
      this.codes.delete(digest);
      if (expires < this.now()) return undefined;
      return { session: this.newSession(), via: 'code' };
    }
    return this.tokenMatches(credential.token) ? { session: this.newSession(), via: 'token' } : undefined;
  }

  /**
   * Whether a request may use the endpoint: 'yes'; 'no' when it showed nothing (or a session
   * that is over); 'wrong' when it showed a wrong token (slowed down, as a wrong code is).
   */
  check(headers: IncomingHttpHeaders): 'yes' | 'no' | 'wrong' {
    if (this.open) return 'yes';
    const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')?.[1];
    if (bearer !== undefined) return this.tokenMatches(bearer.trim()) ? 'yes' : 'wrong';
    const session = cookieValue(headers.cookie, SESSION_COOKIE);
    return session !== undefined && this.sessionValid(session) ? 'yes' : 'no';
  }

  private tokenMatches(token: string): boolean {
    if (this.tokenDigest === undefined || token.length > MAX_CREDENTIAL_CHARS) return false;
    return timingSafeEqual(sha256(token), this.tokenDigest);
  }

  private newSession(): string {
    const expires = this.now() + this.sessionTtlMs;
    const nonce = randomBytes(16).toString('base64url');
    return `${SESSION_VERSION}.${expires}.${nonce}.${this.sign(expires, nonce)}`;
  }

  private sessionValid(session: string): boolean {
    if (session.length > 200) return false;
    const [version, expiresText, nonce, mac] = session.split('.');
    if (version !== SESSION_VERSION || !/^\d{1,16}$/.test(expiresText ?? '') || !nonce || !mac) return false;
    const expected = Buffer.from(this.sign(Number(expiresText), nonce));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
    return Number(expiresText) > this.now();
  }

  private sign(expires: number, nonce: string): string {
    return createHmac('sha256', this.sessionKey).update(`${SESSION_VERSION}.${expires}.${nonce}`).digest('base64url');
  }
}

/** Codes are typed by people: case and dashes or spaces do not matter. */
function codeDigest(code: string): string {
  const plain = code.slice(0, MAX_CREDENTIAL_CHARS).toLowerCase().replace(/[-\s]/g, '');
  return sha256(plain).toString('hex');
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
