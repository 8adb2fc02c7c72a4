import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { cookieValue, SESSION_COOKIE, WebAccess } from '../../src/web/access.js';

const secret = randomBytes(32);
const withSession = (session: string) => ({ cookie: `other=1; ${SESSION_COOKIE}=${session}` });

describe('web access', () => {
  it('an open receiver (no token) lets every request in and has no codes', () => {
    const access = new WebAccess({ secret });
    expect(access.open).toBe(true);
    expect(access.check({})).toBe('yes');
    expect(() => access.newCode()).toThrow();
    expect(access.redeem({ token: 'anything' })).toBeUndefined();
  });

  it('a one-time code opens one session, once; case and dashes do not matter', () => {
    const access = new WebAccess({ token: 'sekrit', secret });
    const code = access.newCode();
    expect(code).toMatch(/^[a-z2-9]{12}$/);
    expect(access.check({})).toBe('no');
    const typed = `${code.slice(0, 4).toUpperCase()}-${code.slice(4)}`;
    const granted = access.redeem({ code: typed });
    expect(granted?.via).toBe('code');
    expect(access.check(withSession(granted!.session))).toBe('yes');
    expect(access.redeem({ code })).toBeUndefined();
  });

  it('codes and sessions expire; only the newest 16 unused codes stay good', () => {
    let now = 1_000_000;
    const access = new WebAccess({ token: 'sekrit', secret, now: () => now, codeTtlMs: 60_000, sessionTtlMs: 120_000 });
    const stale = access.newCode();
    now += 61_000;
    expect(access.redeem({ code: stale })).toBeUndefined();
    const codes = Array.from({ length: 17 }, () => access.newCode());
    expect(access.redeem({ code: codes[0]! })).toBeUndefined();
    const session = access.redeem({ code: codes[16]! })!.session;
    now += 119_000;
    expect(access.check(withSession(session))).toBe('yes');
    now += 2_000;
    expect(access.check(withSession(session))).toBe('no');
  });

  it('sessions are signed: a changed expiry, another secret or another token does not open the receiver', () => {
    const access = new WebAccess({ token: 'sekrit', secret });
    const session = access.redeem({ token: 'sekrit' })!.session;
    const [version, expires, nonce, mac] = session.split('.');
    expect(access.check(withSession(`${version}.${Number(expires) + 1}.${nonce}.${mac}`))).toBe('no');
    expect(access.check(withSession(`${version}.${expires}.${nonce}.${mac!.slice(0, -1)}${mac!.endsWith('A') ? 'B' : 'A'}`))).toBe('no');
    expect(new WebAccess({ token: 'sekrit', secret: randomBytes(32) }).check(withSession(session))).toBe('no');
    expect(new WebAccess({ token: 'other', secret }).check(withSession(session))).toBe('no');
    // Kept from run to run with the secret: a restarted receiver takes it.
    expect(new WebAccess({ token: 'sekrit', secret }).check(withSession(session))).toBe('yes');
  });

  it('the token as a bearer opens the endpoint; a wrong one is told apart (to slow it down)', () => {
    const access = new WebAccess({ token: 'sekrit', secret });
    expect(access.check({ authorization: 'Bearer sekrit' })).toBe('yes');
    expect(access.check({ authorization: 'bearer  sekrit ' })).toBe('yes');
    expect(access.check({ authorization: 'Bearer sekriT' })).toBe('wrong');
    expect(access.check({ authorization: `Bearer ${'x'.repeat(5000)}` })).toBe('wrong');
    expect(access.redeem({ token: 'wrong' })).toBeUndefined();
    expect(access.redeem({ token: 'sekrit' })?.via).toBe('token');
  });

  it('reads one cookie out of a Cookie header', () => {
    expect(cookieValue('a=1; ft_session=v1.x; b=2', 'ft_session')).toBe('v1.x');
    expect(cookieValue('xft_session=1', 'ft_session')).toBeUndefined();
    expect(cookieValue(undefined, 'ft_session')).toBeUndefined();
  });
});
