/**
 * A streaming XXH64 whose state can be saved and restored (see ResumableHasher). Its own module,
 * so that only what needs it (the S3 store) pays for its wasm instance.
 */
import xxhash from 'xxhash-wasm';
import { formatHash, type Hasher } from './hashing.js';

/**
 * A streaming XXH64 whose state can be saved and restored: what an upload kept in an object
 * store needs, since the bytes of an unfinished S3 multipart upload cannot be read back to
 * rebuild the hash. xxhash-wasm keeps its hashers' state out of reach, so this runs the same
 * wasm module in an instance of its own and keeps the 88-byte XXH64_state_t (total length, four
 * lanes, a 32-byte buffer, its fill) itself; `save()` is that state in base64. Digests are those
 * of createHasher (the unit tests compare them).
 */
export interface ResumableHasher extends Hasher {
  save(): string;
}

const XXH64_STATE_BYTES = 88;

/** The few WebAssembly types needed (the project's lib has no DOM, where they are declared). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  instantiate(...args: unknown[]): Promise<{ instance: { exports: Record<string, unknown> } }>;
  Memory: abstract new (...args: never[]) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface RawXxh64 {
  mem: WasmMemory;
  init64(at: number, seed: bigint): void;
  update64(state: number, input: number, length: number): void;
  digest64(state: number): bigint;
}

/**
 * The wasm instance xxhash-wasm makes, caught as it is made: its default export calls
 * WebAssembly.instantiate synchronously, so the hook is in place only for that call. Made when
 * this module is first imported (only the S3 store imports it), so nothing here is reassigned.
 */
const rawApi: Promise<RawXxh64> = (async () => {
  const original = wasm.instantiate;
  let caught: ReturnType<WasmApi['instantiate']> | undefined;
  wasm.instantiate = (...args: unknown[]) => {
    const made = original.apply(wasm, args);
    caught ??= made;
    return made;
  };
  let pending: Promise<unknown>;
  try {
    pending = xxhash();
  } finally {
    wasm.instantiate = original;
  }
  await pending;
  if (!caught) throw new Error('xxhash-wasm did not instantiate its module as expected');
  const exports = (await caught).instance.exports as Partial<RawXxh64>;
  if (!(exports.mem instanceof wasm.Memory) || typeof exports.init64 !== 'function' || typeof exports.update64 !== 'function' || typeof exports.digest64 !== 'function') {
    throw new Error('xxhash-wasm’s module does not export the XXH64 streaming functions expected');
  }
  return exports as RawXxh64;
})();
// A failed start is reported to each caller that awaits it, never as an unhandled rejection.
rawApi.catch(() => undefined);

/** A fresh hasher, or one going on from `saved` (from save()). */
export async function createResumableHasher(saved?: string): Promise<ResumableHasher> {
  const raw = await rawApi;
  const state = new Uint8Array(XXH64_STATE_BYTES);
  const room = (bytes: number) => {
    const missing = bytes - raw.mem.buffer.byteLength;
    if (missing > 0) raw.mem.grow(Math.ceil(missing / 65536));
  };
  if (saved === undefined) {
    room(XXH64_STATE_BYTES);
    new Uint8Array(raw.mem.buffer).fill(0, 0, XXH64_STATE_BYTES); // init64 sets the lanes only
    raw.init64(0, 0n);
    state.set(new Uint8Array(raw.mem.buffer, 0, XXH64_STATE_BYTES));
  } else {
    const bytes = Buffer.from(saved, 'base64');
    if (bytes.length !== XXH64_STATE_BYTES) throw new Error(`a saved hash state is ${XXH64_STATE_BYTES} bytes, not ${bytes.length}`);
    state.set(bytes);
  }
  return {
    update(data) {
      room(XXH64_STATE_BYTES + data.byteLength);
      const memory = new Uint8Array(raw.mem.buffer);
      memory.set(state, 0);
      memory.set(data, XXH64_STATE_BYTES);
      raw.update64(0, XXH64_STATE_BYTES, data.byteLength);
      state.set(memory.subarray(0, XXH64_STATE_BYTES));
    },
    digest() {
      new Uint8Array(raw.mem.buffer).set(state, 0);
      return formatHash(BigInt.asUintN(64, raw.digest64(0)));
    },
    save: () => Buffer.from(state).toString('base64'),
  };
}
