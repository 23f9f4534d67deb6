#!/usr/bin/env node
/*
 * Bundles the CLI into one file, packages/cli/dist/strata.cjs: `tsc -b`'s output of the CLI
 * package and everything it requires (the other packages, yargs, tar-stream, ajv's runtime…).
 * `npm run build` runs it after `tsc -b`.
 *
 * Why: a strata command spends most of its start-up resolving and compiling some 150 small
 * modules. One file is found once and compiled as one script, which bin/strata.js runs with a
 * V8 code cache (packages/cli/src/launch.ts), so that a command's code is compiled on its first
 * run only. The packages keep their own dist/ for the tests and for library use.
 *
 * The bundle is written atomically: a build that is interrupted leaves the previous one.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const esbuild = require('esbuild');

const cli = path.join(__dirname, '..', 'packages', 'cli');
const out = path.join(cli, 'dist', 'strata.cjs');

/**
 * yargs takes two functions from node:assert, for checks of its own internal state (its browser
 * build makes them no-ops), and requires it when it loads; node:assert brings five more modules
 * with it, some 1.4 ms of every start. In the bundle, yargs gets these two instead, which still
 * check (and fail with an ERR_ASSERTION). Everything else that requires node:assert gets Node's.
 */
const YARGS_ASSERT = `'use strict';
function fail(message, otherwise) {
  const e = new Error(message === undefined ? otherwise : String(message));
  e.code = 'ERR_ASSERTION';
  throw e;
}
exports.strictEqual = (actual, expected, message) => {
  if (!Object.is(actual, expected)) fail(message, 'Expected values to be strictly equal');
};
exports.notStrictEqual = (actual, expected, message) => {
  if (Object.is(actual, expected)) fail(message, 'Expected values to be strictly unequal');
};
`;
const yargsAssert = {
  name: 'yargs-assert',
  setup(build) {
    const yargsDir = `${path.sep}node_modules${path.sep}yargs${path.sep}`;
    build.onResolve({ filter: /^(node:)?assert$/ }, (args) =>
      args.importer.includes(yargsDir) ? { path: 'assert', namespace: 'yargs-assert' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'yargs-assert' }, () => ({
      contents: YARGS_ASSERT,
      loader: 'js',
    }));
  },
};

async function main() {
  const result = await esbuild.build({
    entryPoints: [path.join(cli, 'dist', 'main.js')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    write: false,
    outfile: out,
    logLevel: 'warning',
    legalComments: 'none',
    plugins: [yargsAssert],
  });
  const [file] = result.outputFiles;
  // esbuild escapes non-ASCII characters in code and strings, not in comments. Escaped there too,
  // the bundle is ASCII, which bin/strata.js reads as Latin-1: half the time of decoding UTF-8.
  const text = file.text.replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  // vm.Script runs the bundle without an ES module loader, so a dynamic import() left in it would
  // fail when called; esbuild turns the ones it can resolve into require()s.
  if (/\bimport\s*\(/.test(text)) {
    throw new Error('the CLI bundle has a dynamic import(); bin/strata.js cannot run it');
  }

  const tmp = `${out}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    fs.writeSync(fd, text, null, 'latin1');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, out);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
