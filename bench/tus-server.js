#!/usr/bin/env node
// The reference tus server for bench/run.js: @tus/server 2.x with @tus/file-store, as its README
// sets it up, on 127.0.0.1.
//
//   node bench/tus-server.js DIR PORT [--tls]    prints "listening" once bound; runs until killed
//
// Uploads go to DIR (file-store: one file per upload named by its id, and `<id>.json` with its
// metadata). It neither verifies a whole-file hash nor fsyncs. --tls serves HTTPS with a fresh
// self-signed P-256 certificate and the same TLS settings as ft (TLS 1.3, AES-128-GCM first),
// so the encrypted rows compare like with like.
import http from 'node:http';
import https from 'node:https';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import selfsigned from 'selfsigned';

const [directory, portText, flag] = process.argv.slice(2);
const port = Number(portText);
if (!directory || !Number.isInteger(port) || (flag !== undefined && flag !== '--tls')) {
  process.stderr.write('usage: tus-server.js DIR PORT [--tls]\n');
  process.exit(2);
}

// relativeLocation: the Location header would otherwise say http:// behind TLS.
const tus = new Server({ path: '/files', relativeLocation: true, datastore: new FileStore({ directory }) });
const handler = (req, res) => tus.handle(req, res);

let server;
if (flag === '--tls') {
  const pems = await selfsigned.generate([{ name: 'commonName', value: 'bench tus server' }], { keyType: 'ec', curve: 'P-256', algorithm: 'sha256' });
  server = https.createServer(
    {
      key: pems.private,
      cert: pems.cert,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
      honorCipherOrder: true,
    },
    handler,
  );
} else {
  server = http.createServer(handler);
}
server.on('error', (error) => {
  process.stderr.write(`tus-server: ${error.stack ?? error}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
