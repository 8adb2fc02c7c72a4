import xxhash, { type XXHashAPI } from 'xxhash-wasm';

/**
 * xxhash-wasm compiles its module once per process, here, when this module is first imported;
 * every hasher shares it. Started at import rather than on first use so nothing here is ever
 * reassigned: the compile is asynchronous and under a millisecond, and only the sender and the
 * receiver import this module (`ft --help`, `ft discover` never load it).
 */
const api: Promise<XXHashAPI> = xxhash();
// A failed compile is reported to each caller that awaits it, never as an unhandled rejection.
api.catch(() => undefined);

function loadApi(): Promise<XXHashAPI> {
  return api;
}

export function formatHash(value: bigint): string {
  return `xxh64:${value.toString(16).padStart(16, '0')}`;
}

/** Streaming XXH64 (seed 0). `digest()` does not end the stream: more bytes may follow. */
export interface Hasher {
  update(data: Uint8Array): void;
  digest(): string;
}

export async function createHasher(): Promise<Hasher> {
  const { create64 } = await loadApi();
  const state = create64(0n);
  return {
    update: (data) => void state.update(data),
    digest: () => formatHash(state.digest()),
  };
}

export async function hashBytes(data: Uint8Array): Promise<string> {
  const { h64Raw } = await loadApi();
  return formatHash(h64Raw(data, 0n));
}
