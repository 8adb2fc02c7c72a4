// A private sshd on 127.0.0.1 (or on the --link namespace's address) for the scp and `rsync -e ssh` rows of bench/run.js: its own host
// key, client key, authorized_keys, known_hosts and configs in one folder, nothing read from
// /etc/ssh or ~/.ssh. The sshd is a tracked child (killed with its connections at the end, also
// on Ctrl-C); the folder is inside the bench's work folder, which is removed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { capture, freePort, start, stop, describeOutput, waitForListen, which, expectSuccess } from './lib.js';

export const GCM_CIPHER = 'aes128-gcm@openssh.com';
const HOST = 'ft-bench-sshd';
/** sshd refuses to start as root without it (Debian's ssh.service creates it at boot). */
const PRIVSEP_DIR = '/run/sshd';

/** The OpenSSH programs, or a one-line reason why the ssh rows cannot run. */
export function findSshTools() {
  const sshd = which('sshd') ?? which('sshd', '/usr/sbin:/usr/local/sbin'); // sbin is often not on a user's PATH
  const ssh = which('ssh');
  const scp = which('scp');
  const keygen = which('ssh-keygen');
  let missing;
  if (!ssh || !scp || !keygen) missing = 'ssh, scp or ssh-keygen not installed (apt-get install openssh-client)';
  else if (!sshd) missing = 'sshd not installed (apt-get install --no-install-recommends openssh-server)';
  const version = ssh ? /OpenSSH_\S+/.exec(capture('sh', ['-c', `"${ssh}" -V 2>&1`]) ?? '')?.[0]?.replace(/,$/, '') : undefined;
  const gcm = ssh ? (capture(ssh, ['-Q', 'cipher']) ?? '').split('\n').includes(GCM_CIPHER) : false;
  const sftpServer = ['/usr/lib/openssh/sftp-server', '/usr/libexec/openssh/sftp-server', '/usr/libexec/sftp-server'].find((f) => fs.existsSync(f));
  return { sshd, ssh, scp, keygen, version, gcm, sftpServer, missing };
}

function writeConfig(file, lines) {
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

/**
 * Starts sshd -D on a free port. Returns { proc, port, configFile, defaultCipher, remote(path),
 * clientWrap, stop() }, or throws (with sshd's output) when it does not start or refuses our key.
 * `net` (bench/run.js's --link): the address to listen on and the namespaces of sshd
 * (`serverWrap`) and of the clients (`clientWrap`, handed back for scp and rsync).
 */
export async function startSshd(ssh, dir, onCleanup, net = { host: '127.0.0.1' }) {
  fs.mkdirSync(dir, { mode: 0o700 });
  const home = path.join(dir, 'home'); // an empty HOME: no rc files for the remote shell to read
  fs.mkdirSync(home);
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  for (const key of [hostKey, clientKey]) {
    const proc = start('ssh-keygen', ssh.keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'ft-bench', '-f', key]);
    await expectSuccess(proc, 30_000);
  }
  fs.copyFileSync(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
  const user = os.userInfo().username;
  const port = await freePort();
  const sshdConfig = path.join(dir, 'sshd_config');
  writeConfig(sshdConfig, [
    `ListenAddress ${net.host}:${port}`,
    `HostKey ${hostKey}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    `AllowUsers ${user}`,
    'AuthenticationMethods publickey',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'HostbasedAuthentication no',
    'PermitRootLogin prohibit-password',
    'UsePAM no',
    'StrictModes no',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    'PermitTTY no',
    'X11Forwarding no',
    'AllowTcpForwarding no',
    'AllowAgentForwarding no',
    `SetEnv HOME=${home}`,
    // Debian's own sshd_config uses the sftp-server program (scp speaks SFTP since OpenSSH 9.0).
    `Subsystem sftp ${ssh.sftpServer ?? 'internal-sftp'}`,
    'LogLevel ERROR',
  ]);
  const clientConfig = path.join(dir, 'ssh_config');
  writeConfig(clientConfig, [
    `Host ${HOST}`,
    `  HostName ${net.host}`,
    `  Port ${port}`,
    `  User ${user}`,
    `  IdentityFile ${clientKey}`,
    '  IdentitiesOnly yes',
    '  IdentityAgent none',
    '  PreferredAuthentications publickey',
    '  BatchMode yes',
    '  StrictHostKeyChecking accept-new',
    `  UserKnownHostsFile ${path.join(dir, 'known_hosts')}`,
    '  GlobalKnownHostsFile /dev/null',
    '  CheckHostIP no',
    '  UpdateHostKeys no',
    '  ControlMaster no',
    '  ControlPath none',
    '  Compression no',
    '  ForwardAgent no',
    '  ForwardX11 no',
    '  ClearAllForwardings yes',
    '  ConnectTimeout 10',
    '  LogLevel ERROR',
  ]);

  if (process.getuid?.() === 0 && !fs.existsSync(PRIVSEP_DIR)) {
    fs.mkdirSync(PRIVSEP_DIR, { mode: 0o755 });
    onCleanup(() => {
      try {
        fs.rmdirSync(PRIVSEP_DIR); // only if still empty
      } catch {
        /* in use or not empty: leave it */
      }
    });
  }
  const proc = start('sshd', ssh.sshd, ['-D', '-e', '-f', sshdConfig], { killTree: true, wrap: net.serverWrap });
  await waitForListen(proc, port, { probeSafe: true, namespaced: Boolean(net.serverWrap) });
  const check = start('ssh (first login)', ssh.ssh, ['-F', clientConfig, HOST, 'true'], { wrap: net.clientWrap });
  try {
    await expectSuccess(check, 30_000);
  } catch (error) {
    await stop(proc);
    throw new Error(`${error.message}${describeOutput(proc)}`);
  }

  // The cipher a connection without -c gets: the client's first that the server also offers.
  const clientCiphers = /^ciphers (.*)$/m.exec(capture(ssh.ssh, ['-F', clientConfig, '-G', HOST]) ?? '')?.[1]?.split(',') ?? [];
  const serverCiphers = /^ciphers (.*)$/m.exec(capture(ssh.sshd, ['-T', '-f', sshdConfig]) ?? '')?.[1]?.split(',') ?? [];
  const defaultCipher = clientCiphers.find((c) => serverCiphers.includes(c));

  return {
    proc,
    port,
    host: HOST,
    configFile: clientConfig,
    defaultCipher,
    /** `host:path` for scp and rsync. */
    remote: (file) => `${HOST}:${file}`,
    clientWrap: net.clientWrap,
    stop: () => stop(proc),
  };
}
