#!/usr/bin/env node
// Regenerates the hashes, the proofs and the hex dumps shown in docs/PROTOCOL.md (§12), for the
// TCP protocol and for discovery (UDP); test/unit/protocol-doc.test.ts checks that every dump and
// JSON line of the examples is in this output, so an example that goes stale fails the tests. It does not import ft: it encodes frames and datagrams
// straight from the specification (node:crypto and xxhash-wasm only), so it also serves as a
// small second implementation to check the spec.
// Run from the repository root: node docs/protocol-examples.mjs
import { createCipheriv, createHash, createHmac, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import xxhash from 'xxhash-wasm';

const { h64Raw } = await xxhash();

/** `xxh64:` + 16 lowercase hex digits (zero-padded): XXH64, seed 0, of all the bytes. */
export const hash = (bytes) => `xxh64:${h64Raw(bytes, 0n).toString(16).padStart(16, '0')}`;

/** A frame: 4-byte unsigned big-endian length, then the UTF-8 JSON object. */
export function frame(message) {
  const json = Buffer.from(JSON.stringify(message), 'utf8');
  if (json.length < 1 || json.length > 65536) throw new Error(`frame of ${json.length} bytes`);
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(json.length, 0);
  return Buffer.concat([prefix, json]);
}

/**
 * (ft) The key of an unfinished upload (docs/IMPLEMENTATION.md, "On disk"): the first 32 hex digits of SHA-256 over the owner's
 * fingerprint, NUL, the file name's UTF-8 bytes as sent, NUL, the size in decimal.
 */
export const partialKey = (owner, filename, size) =>
  createHash('sha256').update(`${owner}\0${filename}\0${size}`, 'utf8').digest('hex').slice(0, 32);

/**
 * The token proofs (§5.1): HMAC-SHA256 keyed with the token's UTF-8 bytes over the role's label,
 * one NUL byte, len(B) as one byte, the channel binding B, the receiver's nonce, one NUL byte
 * and the sender's nonce (nonces as their hex text); lowercase hex. B is 32 bytes exported from
 * the TLS session (label "EXPORTER-ft-channel-binding", empty context), or empty in plaintext.
 */
export const tokenProof = (token, label, binding, receiverNonce, senderNonce) =>
  createHmac('sha256', token)
    .update(Buffer.concat([Buffer.from(`${label}\0`, 'ascii'), Buffer.from([binding.length]), binding, Buffer.from(`${receiverNonce}\0${senderNonce}`, 'ascii')]))
    .digest('hex');
export const senderProof = (token, binding, receiverNonce, senderNonce) => tokenProof(token, 'ft-token-sender-v5', binding, receiverNonce, senderNonce);
export const receiverProof = (token, binding, receiverNonce, senderNonce) => tokenProof(token, 'ft-token-receiver-v5', binding, receiverNonce, senderNonce);

/** What `ownerProof` signs (§5.1): "ft-owner-v5", one NUL byte, len(B) as one byte, B, and the receiver's nonce as its hex text. */
export const ownerMessage = (binding, nonce) =>
  Buffer.concat([Buffer.from('ft-owner-v5\0', 'utf8'), Buffer.from([binding.length]), binding, Buffer.from(nonce, 'utf8')]);

/**
 * The owner key of a sender hello (§5.1), from a 32-byte Ed25519 seed: `owner` is the
 * raw public key in hex, `ownerProof` the Ed25519 signature (RFC 8032, pure) over ownerMessage.
 */
export function ownerFields(seed, binding, nonce) {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  const owner = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x, 'base64url').toString('hex');
  const ownerProof = sign(null, ownerMessage(binding, nonce), privateKey).toString('hex');
  return { owner, ownerProof };
}

/** (ft) The owner fingerprint a receiver keys partials and receipts by (docs/IMPLEMENTATION.md): SHA-256 of the raw public key, hex. */
export const ownerFingerprint = (ownerHex) => createHash('sha256').update(Buffer.from(ownerHex, 'hex')).digest('hex');

/**
 * (ft) An upload receipt as ft's receiver seals it (docs/IMPLEMENTATION.md, "Receipts"): AES-256-GCM under the receiver's own
 * 32-byte key, a 12-byte IV, additional data "ft-receipt-v1", over the JSON of the claims padded
 * with spaces to byteLength(JSON.stringify(requested)) + 32 × its components + 384 bytes (a
 * length that depends only on the name asked for); the receipt is base64url of IV, ciphertext
 * and 16-byte tag. Opaque to a sender: only the receiver that sealed it can open it, so another
 * receiver may use any format.
 */
export function sealReceipt(key, iv, claims, requested) {
  const text = JSON.stringify(claims);
  const plaintext = Buffer.alloc(Math.max(receiptPaddedLength(requested), Buffer.byteLength(text, 'utf8')), 0x20);
  plaintext.write(text, 'utf8');
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from('ft-receipt-v1'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** (ft) The length a receipt's plaintext is padded to, from the header's filename alone. */
export const receiptPaddedLength = (requested) =>
  Buffer.byteLength(JSON.stringify(requested), 'utf8') + 32 * requested.split('/').length + 384;

/** (ft) How a receipt's claims name the file asked for: SHA-256 of the header's filename (UTF-8), lowercase hex. */
export const receiptName = (filename) => createHash('sha256').update(filename, 'utf8').digest('hex');

/**
 * Discovery datagram (§10): one compact UTF-8 JSON object, `m` and `v` first. A query is padded
 * with spaces in `pad` to exactly 512 bytes, so that no answer is ever larger than it.
 */
export function datagram(fields) {
  const base = { m: 'ft-discovery', v: 1, ...fields };
  if (fields.kind !== 'query') return Buffer.from(JSON.stringify(base), 'utf8');
  const unpadded = Buffer.byteLength(JSON.stringify({ ...base, pad: '' }), 'utf8');
  return Buffer.from(JSON.stringify({ ...base, pad: ' '.repeat(Math.max(0, 512 - unpadded)) }), 'utf8');
}

/** The classic `hexdump -C` layout, including its `*` for rows that repeat the row above. */
export function hexdump(bytes) {
  const lines = [];
  let squeezing = false;
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.subarray(at, at + 16);
    if (at > 0 && row.length === 16 && row.equals(bytes.subarray(at - 16, at))) {
      if (!squeezing) lines.push('*');
      squeezing = true;
      continue;
    }
    squeezing = false;
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0'));
    const left = hex.slice(0, 8).join(' ');
    const right = hex.slice(8).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${left.padEnd(23)}  ${right.padEnd(23)}  |${ascii}|`);
  }
  lines.push(bytes.length.toString(16).padStart(8, '0'));
  return lines.join('\n');
}

// The example values used throughout PROTOCOL.md. A real receiver and sender draw fresh random nonces.
const NONCE = '5e6ea52170acd233a06200635fad6454';
const SENDER_NONCE = createHash('sha256').update('ft example sender nonce').digest('hex').slice(0, 32);
// The examples run in plaintext, where the channel binding is empty; over TLS it is 32 bytes
// from the exporter, which differ on every connection (an example value for §12.3).
const PLAINTEXT_BINDING = Buffer.alloc(0);
const TLS_BINDING = createHash('sha256').update('ft example channel binding').digest();
const TOKEN = 'example-token';
const CONTENT = Buffer.from('hello, world\n', 'utf8');
const HASH = hash(CONTENT);
// The features both hellos of the examples list (§9.2): today's registry has one.
const FEATURES = ['trailing-hash'];

function show(title, message, raw) {
  const bytes = message ? frame(message) : raw;
  console.log(`--- ${title}${message ? `\n${JSON.stringify(message)}` : ''}`);
  console.log(hexdump(bytes));
  console.log();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log('=== hashes');
  for (const [label, bytes] of [
    ['empty file', Buffer.alloc(0)],
    ['"abc"', Buffer.from('abc')],
    ['"x36"', Buffer.from('x36')],
    ['"hello"', CONTENT.subarray(0, 5)],
    ['"hello, world\\n"', CONTENT],
    ['"HELLO"', Buffer.from('HELLO')],
  ]) {
    console.log(`${label.padEnd(18)} ${bytes.length.toString().padStart(2)} bytes  ${hash(bytes)}`);
  }
  console.log();

  // The owner key of the examples (§5.1): a fixed Ed25519 seed. A real sender makes its own.
  const seed = createHash('sha256').update('ft example owner key').digest();
  const owner = ownerFields(seed, PLAINTEXT_BINDING, NONCE);
  const fingerprint = ownerFingerprint(owner.owner);
  console.log('=== the owner key in the sender hello (§5.1)');
  console.log(`example Ed25519 seed: ${seed.toString('hex')}`);
  console.log(`sender nonce: ${SENDER_NONCE}`);
  console.log(`signed message in plaintext, B empty (hex): ${ownerMessage(PLAINTEXT_BINDING, NONCE).toString('hex')}`);
  console.log(`owner fingerprint (SHA-256 of the raw public key): ${fingerprint}\n`);

  // A receipt as ft's receiver would seal it, with a fixed key and IV (a real receiver draws both).
  const receiptKey = createHash('sha256').update('ft example receipt key').digest();
  const receiptIv = createHash('sha256').update('ft example receipt iv').digest().subarray(0, 12);
  const claims = {
    owner: fingerprint,
    name: receiptName('greeting.txt'),
    path: 'greeting.txt',
    hash: HASH,
    dev: 2049,
    ino: 1835011,
    size: 13,
    mtimeMs: 1764626400123.4568,
    ctimeMs: 1764626400123.4568,
  };
  const receipt = sealReceipt(receiptKey, receiptIv, claims, 'greeting.txt');
  console.log('=== (ft) an example receipt (docs/IMPLEMENTATION.md)');
  console.log(`key ${receiptKey.toString('hex')}\niv  ${receiptIv.toString('hex')}\nclaims ${JSON.stringify(claims)}`);
  console.log(`plaintext: the claims (${Buffer.byteLength(JSON.stringify(claims))} bytes) and spaces, ${receiptPaddedLength('greeting.txt')} bytes`);
  console.log(`receipt (${receipt.length} characters) ${receipt}\n`);

  const senderHello = { type: 'hello', protocol: 'ft', version: 5, nonce: SENDER_NONCE, client: 'ft', ...owner, features: FEATURES };
  const header = { type: 'file', id: 1, filename: 'greeting.txt', size: 13, hash: HASH };
  console.log('=== example 1: sending greeting.txt (plaintext: B is empty)');
  show('R->S hello', { type: 'hello', protocol: 'ft', version: 5, auth: 'none', nonce: NONCE, name: 'laptop', features: FEATURES });
  show('S->R hello', senderHello);
  show('R->S welcome (no token: no proof)', { type: 'welcome' });
  show('S->R file', header);
  show('R->S accept', { type: 'accept', id: 1, offset: 0 });
  show('S->R body', { type: 'body', id: 1, offset: 0, length: 13 });
  show('S->R 13 raw body bytes', undefined, CONTENT);
  show('R->S done (no token: no path)', { type: 'done', id: 1, hash: HASH, receipt });
  show('S->R bye', { type: 'bye' });
  show('the whole S->R byte stream of example 1', undefined, Buffer.concat([
    frame(senderHello),
    frame(header),
    frame({ type: 'body', id: 1, offset: 0, length: 13 }),
    CONTENT,
    frame({ type: 'bye' }),
  ]));

  console.log('=== example 2: resuming greeting.txt from byte 5');
  const prefixHash = hash(CONTENT.subarray(0, 5));
  show('R->S accept', { type: 'accept', id: 1, offset: 5, prefixHash });
  show('S->R body', { type: 'body', id: 1, offset: 5, length: 8 });
  show('S->R 8 raw body bytes', undefined, CONTENT.subarray(5));
  console.log(`(a partial of HELLO instead: prefixHash ${hash(Buffer.from('HELLO'))})\n`);

  console.log('=== example 3: token proofs (plaintext: B is empty)');
  const proof = senderProof(TOKEN, PLAINTEXT_BINDING, NONCE, SENDER_NONCE);
  const welcomeProof = receiverProof(TOKEN, PLAINTEXT_BINDING, NONCE, SENDER_NONCE);
  console.log(`token ${JSON.stringify(TOKEN)}, receiver nonce ${NONCE}, sender nonce ${SENDER_NONCE}`);
  console.log(`sender's proof ${proof}\nreceiver's proof ${welcomeProof}\n`);
  show('R->S hello', { type: 'hello', protocol: 'ft', version: 5, auth: 'hmac-sha256', nonce: NONCE, name: 'laptop', features: FEATURES });
  show('S->R hello', { ...senderHello, proof });
  show('R->S welcome', { type: 'welcome', proof: welcomeProof });
  console.log(`R->S done (token holder: with path)\n${JSON.stringify({ type: 'done', id: 1, hash: HASH, receipt, path: 'greeting.txt' })}\n`);

  console.log('=== example 3 over TLS: the same nonces, with an example channel binding');
  console.log(`binding B ${TLS_BINDING.toString('hex')}`);
  console.log(`token proof input, sender (hex): ${Buffer.concat([Buffer.from('ft-token-sender-v5\0'), Buffer.from([TLS_BINDING.length]), TLS_BINDING, Buffer.from(`${NONCE}\0${SENDER_NONCE}`)]).toString('hex')}`);
  console.log(`ownerProof ${ownerFields(seed, TLS_BINDING, NONCE).ownerProof}`);
  console.log(`sender's proof ${senderProof(TOKEN, TLS_BINDING, NONCE, SENDER_NONCE)}`);
  console.log(`receiver's proof ${receiverProof(TOKEN, TLS_BINDING, NONCE, SENDER_NONCE)}\n`);

  console.log('=== example 4: four bytes too many after a body');
  const extra = Buffer.from('XYZW');
  show('S->R 13 body bytes then "XYZW"', undefined, Buffer.concat([CONTENT, extra]));
  console.log(`"XYZW" read as a length prefix: ${extra.readUInt32BE(0)}\n`);
  console.log('(R->S done for id 1 first: the same frame as step 6 of example 1)\n');
  show('R->S error', { type: 'error', code: 'FRAME_TOO_LARGE', message: `frame length ${extra.readUInt32BE(0)} is over the 65536-byte limit` });

  console.log('=== example 5: the hash after the body');
  show('S->R file without hash', { type: 'file', id: 1, filename: 'greeting.txt', size: 13 });
  console.log('(R->S accept, S->R body and its 13 raw bytes: the same frames as steps 4 and 5 of example 1)\n');
  show('S->R hash', { type: 'hash', id: 1, hash: HASH });
  show('the S->R byte stream from the body frame to the hash', undefined, Buffer.concat([
    frame({ type: 'body', id: 1, offset: 0, length: 13 }),
    CONTENT,
    frame({ type: 'hash', id: 1, hash: HASH }),
  ]));
  console.log('(R->S done: the same frame as step 6 of example 1)\n');
  console.log(`(ft) partial key for greeting.txt of this owner, with or without hash: ${partialKey(fingerprint, 'greeting.txt', 13)}\n`);

  console.log('=== example 6: sending again with the receipt');
  show('S->R file with hash and receipt', { ...header, receipt });
  show('R->S skip (no token: no path)', { type: 'skip', id: 1, reason: 'already-there' });

  console.log('=== example 7: a newer upload of the same file takes over (§6.6)');
  console.log('(the older connection\'s file; the newer header gets an accept at the offset kept)');
  console.log(`${JSON.stringify({ type: 'failed', id: 1, code: 'BUSY', message: 'a newer upload of greeting.txt took over' })}\n`);

  console.log('=== example 8: a stream (§9.4; both hellos list trailing-hash and stream)');
  show('S->R file: a stream, no size, no hash', { type: 'file', id: 1, filename: 'greeting.txt', stream: true });
  show('R->S accept (a stream always starts at 0)', { type: 'accept', id: 1, offset: 0 });
  show('S->R first body', { type: 'body', id: 1, offset: 0, length: 7 });
  show('S->R second body', { type: 'body', id: 1, offset: 7, length: 6 });
  show('S->R hash, with the size', { type: 'hash', id: 1, hash: HASH, size: 13 });
  show('R->S failed early (a limit of 10 bytes, passed by the second body)', { type: 'failed', id: 1, code: 'TOO_LARGE', message: "the stream greeting.txt passed this receiver's limit of 10 bytes" });

  console.log('=== example 9: file metadata and an empty folder (§9.5; both hellos also list "metadata")');
  show('S->R file with mtime and mode', { ...header, mtime: '1700000000.123456789', mode: 0o644 });
  show('S->R folder', { type: 'file', id: 2, filename: 'photos/2023/empty', folder: true });
  show('R->S accept', { type: 'accept', id: 1, offset: 0 });
  show('R->S done for the folder (no hash)', { type: 'done', id: 2 });
  show('S->R file of 1969 (seconds before the epoch)', { type: 'file', id: 3, filename: 'old.txt', size: 0, hash: hash(Buffer.alloc(0)), mtime: '-86400.5' });

  console.log('=== discovery (§12.8): datagrams (UDP port 9527)');
  // addrs: every IPv4 address it may answer from, those on the asker's (or the beacon's) subnet first.
  // fp: the full fingerprint of the receiver's key (an example value); absent for a receiver in plaintext.
  const fp = 'SXNY77BX73MUJMCUMUKGALLTDDIT2IBYSLPPP6WVZI33I27WVMCA';
  const receiverInfo = { name: 'laptop', id: '9f86d081884c7d65', port: 9527, auth: false, interval: 3, fp, addrs: ['192.168.1.20', '127.0.0.1'] };
  const qid = '2c26b46b68ffc68f';
  for (const [title, bytes] of [
    ['announce (broadcast every 3 s)', datagram({ kind: 'announce', ...receiverInfo })],
    ['query (broadcast by a sender)', datagram({ kind: 'query', qid })],
    ['answer (unicast to the query\'s source)', datagram({ kind: 'answer', qid, ...receiverInfo })],
  ]) {
    const text = bytes.toString('utf8').replace(/"pad":"( *)"/, (_, pad) => `"pad":"<${pad.length} spaces>"`);
    console.log(`--- ${title}: ${bytes.length} bytes\n${text}`);
    console.log(hexdump(bytes));
    console.log();
  }
}
