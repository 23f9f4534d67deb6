#!/usr/bin/env node
'use strict';
// The `strata` command: the compiled CLI (`npm run build`), run as it is.
// A closed pipe (`strata inspect x | head`) is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e && e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}
require('../dist/main.js')
  .main(process.argv.slice(2))
  .then((code) => {
    // The command has finished its work, so the process ends here rather than waiting for a
    // natural exit, which would first tear down the whole V8 heap. But what it wrote to a pipe
    // may still be queued (a pipe takes 64 KiB at a time): an empty write's callback runs once
    // everything written before it is flushed.
    process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
  });
