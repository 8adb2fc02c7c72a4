#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// The receiver keeps its memory low with young-generation collections (src/transfer/young-garbage.ts);
// the flag exposes `gc` in contexts created after it is set.
setFlagsFromString('--expose-gc');
globalThis.gc ??= runInNewContext('gc');

const { run } = await import('../dist/cli/main.js');
process.exitCode = await run(process.argv);
