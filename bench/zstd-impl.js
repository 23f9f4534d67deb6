#!/usr/bin/env node
/*
 * Which zstd implementation the layer codec uses, by measurement: the system `zstd` binary over
 * pipes (what @strata/tools spawns), a native binding (zstd-napi), and the emscripten build
 * (zstd-codec). Each compresses the same minbase tar at level 3 in its own child process, so
 * peak RSS is per candidate; the median of STRATA_BENCH_REPS (default 3) runs is reported.
 *
 *   npm run build && node bench/zstd-impl.js
 *
 * The two npm candidates are not dependencies of Strata: they are installed on first use into
 * STRATA_BENCH_DIR (default /var/tmp/strata-bench/zstd-impl), which needs the npm registry and a
 * C++ toolchain for zstd-napi. Input: a tar of /var/tmp/strata-bench/rootfs (or the minbase
 * fixture) in /dev/shm. Prints a Markdown table and one JSON line.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, execSync, spawnSync } = require('node:child_process');
const { minbaseTar } = require('./fixture');

const REPS = Number(process.env.STRATA_BENCH_REPS || 3);
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/zstd-impl';
const ROOTFS = '/var/tmp/strata-bench/rootfs';
const INPUT = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : DIR, 'strata-zstd-impl.tar');
const TOOLS = path.join(__dirname, '..', 'packages', 'tools', 'dist');

// Each candidate reads INPUT in 1 MiB chunks and compresses it at level 3, counting the output.
const CANDIDATES = {
  'system zstd -3 -T0 over pipes (@strata/tools)': `
    const { zstdCompress } = require(${JSON.stringify(TOOLS)});
    const z = zstdCompress();
    let out = 0;
    z.stdout.on('data', (c) => (out += c.length));
    fs.createReadStream(INPUT, { highWaterMark: 1 << 20 }).pipe(z.stdin);
    await z.done;
    await new Promise((r) => (z.stdout.readableEnded ? r() : z.stdout.on('end', r)));
    return out;`,
  'zstd-napi CompressStream, level 3, 2 workers': `
    const { CompressStream } = require('zstd-napi');
    const { pipeline } = require('node:stream/promises');
    const c = new CompressStream({ compressionLevel: 3, nbWorkers: 2 });
    let out = 0;
    await pipeline(fs.createReadStream(INPUT, { highWaterMark: 1 << 20 }), c, async (src) => {
      for await (const b of src) out += b.length;
    });
    return out;`,
  'zstd-napi CompressStream, level 3, single-threaded': `
    const { CompressStream } = require('zstd-napi');
    const { pipeline } = require('node:stream/promises');
    const c = new CompressStream({ compressionLevel: 3 });
    let out = 0;
    await pipeline(fs.createReadStream(INPUT, { highWaterMark: 1 << 20 }), c, async (src) => {
      for await (const b of src) out += b.length;
    });
    return out;`,
  'zstd-codec (emscripten) compressChunks, level 3': `
    const { ZstdCodec } = require('zstd-codec');
    const chunks = [];
    for await (const c of fs.createReadStream(INPUT, { highWaterMark: 1 << 20 })) chunks.push(c);
    const size = chunks.reduce((a, c) => a + c.length, 0);
    return await new Promise((resolve) =>
      ZstdCodec.run((z) => resolve(new z.Streaming().compressChunks(chunks, size, 3).length)),
    );`,
};

function ensureCandidates() {
  const ok = () =>
    spawnSync(process.execPath, ['-e', "require('zstd-napi');require('zstd-codec')"], {
      cwd: DIR,
      stdio: 'ignore',
    }).status === 0;
  if (ok()) return;
  fs.mkdirSync(DIR, { recursive: true });
  if (!fs.existsSync(path.join(DIR, 'package.json')))
    fs.writeFileSync(path.join(DIR, 'package.json'), '{"private":true}\n');
  process.stderr.write(`installing zstd-napi and zstd-codec into ${DIR}\n`);
  execFileSync(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--foreground-scripts',
      'zstd-napi@0.0.13',
      'zstd-codec@0.1.5',
    ],
    { cwd: DIR, stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

function runCandidate(body) {
  const script = `'use strict';
    const fs = require('node:fs');
    const INPUT = ${JSON.stringify(INPUT)};
    (async () => {
      const t = process.hrtime.bigint();
      const out = await (async () => { ${body} })();
      const s = Number(process.hrtime.bigint() - t) / 1e9;
      process.stdout.write(JSON.stringify({ s, out }));
    })().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\\n'); process.exit(1); });`;
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, '-e', script], {
    cwd: DIR,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const rssKiB = Number(r.stderr.trim().split('\n').pop());
  if (r.status !== 0) return { error: r.stderr.trim().split('\n').slice(-3).join(' '), rssKiB };
  return { ...JSON.parse(r.stdout), rssKiB };
}

function main() {
  ensureCandidates();
  if (!fs.existsSync(INPUT)) {
    if (fs.existsSync(ROOTFS)) execSync(`tar -cf ${INPUT} -C ${ROOTFS} .`);
    else fs.copyFileSync(minbaseTar(), INPUT);
  }
  const inBytes = fs.statSync(INPUT).size;
  const rows = [];
  for (const [name, body] of Object.entries(CANDIDATES)) {
    const runs = [];
    for (let i = 0; i < REPS; i++) runs.push(runCandidate(body));
    const good = runs.filter((r) => r.error === undefined);
    if (good.length === 0) {
      rows.push({ name, error: runs[0].error, rssKiB: runs[0].rssKiB });
      continue;
    }
    const s = good.map((r) => r.s).sort((a, b) => a - b);
    rows.push({
      name,
      s: s[s.length >> 1],
      runs: good.map((r) => r.s),
      out: good[0].out,
      rssKiB: Math.max(...good.map((r) => r.rssKiB)),
    });
  }
  console.log(
    `Input: a ${(inBytes / 2 ** 20).toFixed(0)} MiB tar of a minbase rootfs; ${REPS} runs each, median; peak RSS of the process.\n`,
  );
  console.log('| candidate | median s | MB/s in | output MB | peak RSS MiB |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of rows) {
    if (r.error) {
      console.log(`| ${r.name} | failed: ${r.error} | | | ${(r.rssKiB / 1024).toFixed(0)} |`);
      continue;
    }
    console.log(
      `| ${r.name} | ${r.s.toFixed(2)} | ${(inBytes / 1e6 / r.s).toFixed(0)} | ${(r.out / 1e6).toFixed(1)} | ${(r.rssKiB / 1024).toFixed(0)} |`,
    );
  }
  console.log(JSON.stringify({ bench: 'zstd-impl', inBytes, rows }));
}

main();
