// The pair of templates the diff, report and SBOM benches read: a minbase template (`strata
// template create` of the minbase fixture) and one built FROM it with three small packages, in
// a bench store of their own, made once and kept between runs.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./timing');
const { minbaseTar } = require('./fixture');

const CLI = path.join(path.resolve(__dirname, '..'), 'packages/cli/bin/strata.js');
const PKGS = ['sensible-utils', 'runit-helper', 'ucf'];

/** The mirror's apt sources, written to `dir`/sources.list; its path. */
function benchSources(dir) {
  const file = path.join(dir, 'sources.list');
  fs.writeFileSync(
    file,
    'deb http://deb.debian.org/debian bookworm main\n' +
      'deb http://deb.debian.org/debian bookworm-updates main\n' +
      'deb http://deb.debian.org/debian-security bookworm-security main\n',
  );
  return file;
}

/** Make `base:bench` and `derived:bench` in `store` (under `dir`) unless they are there. */
function setUpPair(dir, store) {
  const strata = (args) => run(process.execPath, [CLI, '--store', store, ...args]);
  fs.mkdirSync(dir, { recursive: true });
  const tags = new Set(
    strata(['ls'])
      .stdout.split('\n')
      .map((l) => l.split(/\s+/)[0]),
  );
  if (!tags.has('base:bench')) {
    strata(['template', 'create', minbaseTar(), '-t', 'base:bench', '--name', 'bench-base']);
  }
  if (!tags.has('derived:bench')) {
    const ctx = path.join(dir, 'derived');
    fs.mkdirSync(ctx, { recursive: true });
    fs.writeFileSync(path.join(ctx, 'Stratafile'), `FROM base:bench\nINSTALL ${PKGS.join(' ')}\n`);
    strata(['build', '-q', '--apt-sources', benchSources(dir), '-t', 'derived:bench', ctx]);
  }
}

module.exports = { CLI, PKGS, benchSources, setUpPair };
