import https from 'node:https';
import http from 'node:http';
import type { TLSSocket } from 'node:tls';
import { fingerprintOfCertificate } from '../../src/auth/fingerprint.js';

export interface WebResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Full fingerprint of the certificate the server presented (HTTPS). */
  fingerprint?: string;
  /** SHA-256 of that certificate, as browsers show it (`AB:CD:…`). */
  certificateSha256?: string;
  /** The ALPN protocol the TLS handshake settled on. */
  alpn?: string | false | null;
}

export interface WebRequestOptions {
  method?: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
  /** ALPN protocols to offer (none by default, as Node's https client). */
  alpn?: string[];
  plaintext?: boolean;
  timeoutMs?: number;
}

/**
 * One request to a receiver's web side on 127.0.0.1, on a connection of its own. The receiver's
 * certificate is self-signed: it is not verified here, but its fingerprint is returned to check.
 */
export function webRequest(port: number, path: string, options: WebRequestOptions = {}): Promise<WebResponse> {
  const { method = 'GET', headers = {}, body, alpn, plaintext = false, timeoutMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port, path, method, headers, agent: false as const, timeout: timeoutMs };
    const req = plaintext
      ? http.request(common)
      : https.request({ ...common, rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: alpn } : {}) });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const socket = res.socket as TLSSocket;
        const certificate = plaintext ? undefined : socket.getPeerCertificate?.();
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          ...(certificate?.raw
            ? { fingerprint: fingerprintOfCertificate(certificate.raw), certificateSha256: certificate.fingerprint256, alpn: socket.alpnProtocol }
            : {}),
        });
      });
    });
    req.end(body);
  });
}

/** The session cookie (`name=value`) a Set-Cookie header gave, for the next request's Cookie header. */
export function sessionCookie(response: WebResponse): string {
  const header = response.headers['set-cookie']?.[0];
  if (!header) throw new Error(`no Set-Cookie in the answer (status ${response.status}): ${response.body}`);
  return header.split(';')[0]!;
}
