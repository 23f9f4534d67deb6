// The minbase tarball the benches start from: `mmdebstrap --variant=minbase --mode=root
// --format=tar bookworm`, the same tarball as the e2e fixture. Taken from STRATA_BENCH_MINBASE,
// else from the e2e fixture cache, else made here once (root, network and the host's apt sources).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const E2E_CACHE = process.env.STRATA_E2E_CACHE || '/var/tmp/strata-e2e-cache';
const OWN = '/var/tmp/strata-bench/minbase.tar';

function minbaseTar() {
  const given = process.env.STRATA_BENCH_MINBASE;
  if (given) {
    if (!fs.existsSync(given)) throw new Error(`STRATA_BENCH_MINBASE=${given}: no such file`);
    return given;
  }
  // The e2e harness writes its stamp only once the tarball is complete.
  const e2e = path.join(E2E_CACHE, 'minbase.tar');
  if (fs.existsSync(path.join(E2E_CACHE, 'minbase.json')) && fs.existsSync(e2e)) return e2e;
  if (!fs.existsSync(OWN)) {
    fs.mkdirSync(path.dirname(OWN), { recursive: true });
    // The name must end in .tar: mmdebstrap picks the output format from it.
    const partial = `${OWN.slice(0, -'.tar'.length)}.partial-${process.pid}.tar`;
    process.stderr.write(`making ${OWN} with mmdebstrap\n`);
    try {
      execFileSync(
        'mmdebstrap',
        ['--variant=minbase', '--mode=root', '--format=tar', 'bookworm', partial],
        { stdio: ['ignore', 'ignore', 'inherit'] },
      );
      fs.renameSync(partial, OWN);
    } finally {
      fs.rmSync(partial, { force: true });
    }
  }
  return OWN;
}

module.exports = { minbaseTar };
