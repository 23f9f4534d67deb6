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
    // The command has finished its work and written its output (stdout and stderr to files,
    // pipes and terminals are synchronous on Linux), so the process ends here: a natural exit
    // would first tear down the whole V8 heap, which nothing needs.
    process.exit(code);
  });
