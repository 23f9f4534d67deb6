/**
 * Runs once before the tests. A worker thread runs a file, and Node runs only JavaScript, so
 * the layer package's inflate worker runs from its compiled dist/ even under ts-jest (see
 * workerScript in packages/layer/src/inflate.ts). Building the package here (incremental: it
 * does nothing when dist/ is up to date) keeps that file the same as its source.
 */
'use strict';
const { execFileSync } = require('node:child_process');

module.exports = () => {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', 'packages/layer'], {
    cwd: __dirname,
    stdio: 'inherit',
  });
};
