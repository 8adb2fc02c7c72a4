#!/usr/bin/env node
// The "node-copy" baseline for bench/run.js: the least a Node program can do to move a file over
// TCP. No hashing, no fsync, no protocol: the sender pipes fs.createReadStream into a socket, the
// receiver pipes the socket into fs.createWriteStream (64 KiB read chunks, the Node defaults).
//
//   node bench/node-copy.js receive PORT OUT   prints "listening" once bound to 127.0.0.1:PORT,
//                                              takes one connection, exits 0 once OUT is closed
//   node bench/node-copy.js send PORT IN       connects to 127.0.0.1:PORT and streams IN
import fs from 'node:fs';
import net from 'node:net';
import { pipeline } from 'node:stream/promises';

const [mode, portText, file] = process.argv.slice(2);
const port = Number(portText);
if (!['receive', 'send'].includes(mode) || !Number.isInteger(port) || port < 1 || port > 65535 || !file) {
  process.stderr.write('usage: node-copy.js receive|send PORT FILE\n');
  process.exit(2);
}

function fail(error) {
  process.stderr.write(`node-copy ${mode}: ${error?.stack ?? error}\n`);
  process.exit(1);
}

if (mode === 'receive') {
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    server.close(); // one transfer only
    pipeline(socket, fs.createWriteStream(file)).then(() => process.exit(0), fail);
  });
  server.on('error', fail);
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
} else {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', fail);
  socket.once('connect', () => {
    pipeline(fs.createReadStream(file), socket).then(() => process.exit(0), fail);
  });
}
