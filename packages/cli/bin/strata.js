#!/usr/bin/env node
'use strict';
// The launcher (bin/strata) hands NODE_EXTRA_CA_CERTS on under another name, so that Node does
// not parse it at boot; it goes back here, for the registry client and for child processes.
if (process.env.STRATA_NODE_EXTRA_CA_CERTS !== undefined) {
  process.env.NODE_EXTRA_CA_CERTS = process.env.STRATA_NODE_EXTRA_CA_CERTS;
  delete process.env.STRATA_NODE_EXTRA_CA_CERTS;
}
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
    process.exitCode = code;
  });
