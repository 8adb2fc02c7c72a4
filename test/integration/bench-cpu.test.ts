// The bench's CPU accounting for servers (bench/lib.js watchTreeCpu): a connection's CPU comes
// back to the server through cutime/cstime when every parent reaps its child, and a child that is
// not reaped (as sshd's monitor does with a non-root session child) must give "not measured",
// never a figure that is too low. Real processes; assertions on CPU time, not on speed.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const libPath = '../../bench/lib.js'; // plain JS without types: imported by a string variable
const linux = process.platform === 'linux';

/** A node one-liner that burns `ms` of its own CPU time, then exits. */
function burner(ms: number): string {
  return `node -e "const t=process.cpuUsage();while((process.cpuUsage(t).user+process.cpuUsage(t).system)/1000<${ms});"`;
}

/** A long-lived "server" that runs `script` with sh once, like a daemon forking for a connection. */
function startServer(script: string) {
  const server = spawn(process.execPath, ['-e', `setTimeout(()=>{require('child_process').spawn('sh',['-c',${JSON.stringify(script)}],{stdio:'ignore'}).on('exit',()=>{})},300);setTimeout(()=>{},60000)`], { stdio: 'ignore' });
  return server;
}

describe.runIf(linux)('bench CPU accounting of a server tree', () => {
  it('counts the CPU of a grandchild that its parent waited for', async () => {
    const { watchTreeCpu } = await import(libPath);
    const server = startServer(`${burner(400)}; true`); // sh waits for the burner
    try {
      const watch = await watchTreeCpu(server.pid, 20);
      await new Promise((resolve) => setTimeout(resolve, 600)); // the connection has started
      const result = await watch.finish(30_000);
      expect(result.reason).toBeUndefined();
      expect(result.peakRss).toBeGreaterThan(0); // the server's (or its children's) VmHWM
      expect(result.seconds).toBeGreaterThanOrEqual(0.38);
    } finally {
      server.kill('SIGKILL');
    }
  }, 60_000);

  it('refuses a reading when a child was not reaped by its parent', async () => {
    const { watchTreeCpu } = await import(libPath);
    // After exec, the parent is `sleep`, which never waits: the burner is lost to init.
    const server = startServer(`${burner(400)} & exec sleep 3`);
    try {
      const watch = await watchTreeCpu(server.pid, 20);
      await new Promise((resolve) => setTimeout(resolve, 600));
      const result = await watch.finish(30_000);
      expect(result.seconds).toBeUndefined();
      expect(result.reason).toMatch(/not reaped/);
    } finally {
      server.kill('SIGKILL');
    }
  }, 60_000);
});
