import { readFileSync } from 'node:fs';
import net from 'node:net';

/**
 * Ports are picked below the kernel's ephemeral range: a port bound with 0 comes from that
 * range, where any outgoing connection (another test file's sender, a Ceph daemon) may take it
 * between the pick and `ft serve` binding it; that made CLI tests fail with "port in use".
 */
const EPHEMERAL_LOW = (() => {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    return 32768;
  }
})();
const LOW = 20_000;
const handedOut = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the kernel picks (port 0): used only when there is no room below the ephemeral range. */
function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: '127.0.0.1', exclusive: true }, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close((error) => (error ? reject(error) : resolve(port)));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, never handed out before in this process,
 * chosen at random so parallel test files rarely pick the same one.
 * (`ft serve` refuses --port 0, so CLI tests need a concrete port.)
 */
export async function freePort(): Promise<number> {
  if (!(EPHEMERAL_LOW > LOW + 1000)) return kernelPort();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOW + Math.floor(Math.random() * (EPHEMERAL_LOW - LOW));
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  return kernelPort();
}
