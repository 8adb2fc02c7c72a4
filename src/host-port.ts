/** `host:port` as people and logs write it, an IPv6 address in brackets (`[fe80::1]:9527`). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
