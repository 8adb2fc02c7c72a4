#!/usr/bin/env node
// Parallel fsyncs of many small files share journal commits; libuv's default of 4 threads would
// serialise them. Set before anything touches the thread pool, hence the dynamic import.
process.env.UV_THREADPOOL_SIZE ??= '64';
const { run } = await import('../dist/cli/main.js');

process.exitCode = await run(process.argv);
