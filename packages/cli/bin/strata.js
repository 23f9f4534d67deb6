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
// `npm run build` bundles the CLI into dist/strata.cjs, which runs with a V8 code cache
// (src/launch.ts). Without the bundle (only `tsc -b` was run), dist/main.js runs as it is.
const path = require('node:path');
const bundle = path.join(__dirname, '..', 'dist', 'strata.cjs');
let cli;
try {
  const { loadBundle, codeCacheDir } = require('../dist/launch.js');
  cli = loadBundle(bundle, codeCacheDir());
} catch (e) {
  if (e.code !== 'ENOENT' || e.path !== bundle) throw e;
  cli = { exports: require('../dist/main.js'), save: () => undefined };
}
let command = '';
cli.exports.main(process.argv.slice(2), { onCommand: (c) => (command = c) }).then((code) => {
  process.exitCode = code;
  cli.save(command);
});
