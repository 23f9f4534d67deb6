#!/usr/bin/env node
/*
 * Flatten benchmark: `strata flatten --rootfs out.tar` of a 3-layer image against
 * `umoci unpack` + `tar -c` of its rootfs, and the peak RSS of flattening a ~1 GB rootfs.
 *
 *   npm run build && node bench/flatten.js
 *
 * Inputs (built by bench/layer.js, or made here from the e2e fixture if missing):
 *   STRATA_BENCH_ROOTFS  minbase rootfs dir (default /var/tmp/strata-bench/rootfs)
 *   STRATA_BENCH_BIG     ~1 GB tree (default /var/tmp/strata-bench/big; 0 skips the RSS run)
 *   STRATA_BENCH_REPS    runs per measurement (default 3); the median is reported
 *   STRATA_BENCH_OUT     where outputs go (default /dev/shm: the VM's disk has noisy discards)
 * The speed image uses gzip layers, since umoci 0.4.7 cannot read zstd. Both sides run as whole
 * processes, as a user would run them. Prints a Markdown table and one JSON line; exits 1 if
 * Strata is not at least 2x faster or the RSS is 250 MB or more.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync, execSync } = require('node:child_process');
const { Buffer } = require('node:buffer');
const { Store } = require('../packages/store/dist');
const { packTree, createLayer } = require('../packages/layer/dist');

const REPS = Number(process.env.STRATA_BENCH_REPS || 3);
const ROOTFS = process.env.STRATA_BENCH_ROOTFS || '/var/tmp/strata-bench/rootfs';
const BIG = process.env.STRATA_BENCH_BIG ?? '/var/tmp/strata-bench/big';
const OUT = process.env.STRATA_BENCH_OUT || (fs.existsSync('/dev/shm') ? '/dev/shm' : '/var/tmp');
const WORK = '/var/tmp/strata-bench/flatten';
const CLI = path.join(__dirname, '..', 'packages', 'cli', 'bin', 'strata.js');
const EPOCH = 1700000000;

const sh = (cmd, opts = {}) =>
  execSync(cmd, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26, ...opts }).toString();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function wall(fn) {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** Upper layers as overlayfs upper dirs: 0/0 char devices are whiteouts, opaque xattrs. */
function makeUppers(base) {
  const l2 = path.join(WORK, 'l2');
  const l3 = path.join(WORK, 'l3');
  if (fs.existsSync(path.join(WORK, '.complete'))) return [l2, l3];
  fs.rmSync(WORK, { recursive: true, force: true });
  fs.mkdirSync(path.join(l2, 'usr/share'), { recursive: true });
  sh(`mknod ${l2}/usr/share/doc c 0 0`); // whiteout of a big doc tree
  fs.mkdirSync(path.join(l2, 'usr/share/zoneinfo'), { recursive: true });
  sh(`setfattr -n trusted.overlay.opaque -v y ${l2}/usr/share/zoneinfo`);
  fs.writeFileSync(path.join(l2, 'usr/share/zoneinfo/UTC'), 'opaque\n');
  fs.mkdirSync(path.join(l2, 'opt/app'), { recursive: true });
  for (let i = 0; i < 200; i++) {
    fs.writeFileSync(path.join(l2, `opt/app/f${i}`), Buffer.alloc(64 * 1024, i));
  }
  fs.mkdirSync(path.join(l2, 'etc'), { recursive: true });
  fs.copyFileSync(path.join(base, 'etc/passwd'), path.join(l2, 'etc/passwd'));
  fs.appendFileSync(path.join(l2, 'etc/passwd'), 'app:x:1000:1000::/opt/app:/bin/sh\n');
  fs.mkdirSync(path.join(l3, 'usr/bin'), { recursive: true });
  const bins = fs.readdirSync(path.join(base, 'usr/bin')).sort().slice(0, 40);
  for (const b of bins) {
    const st = fs.lstatSync(path.join(base, 'usr/bin', b));
    if (st.isFile()) fs.writeFileSync(path.join(l3, 'usr/bin', b), `replaced ${b}\n`);
  }
  fs.mkdirSync(path.join(l3, 'opt/app'), { recursive: true });
  for (let i = 0; i < 50; i++) sh(`mknod ${l3}/opt/app/f${i} c 0 0`);
  fs.writeFileSync(path.join(WORK, '.complete'), '');
  return [l2, l3];
}

async function putImage(store, tag, dirs, compression) {
  const layers = [];
  const diffIds = [];
  for (const [i, root] of dirs.entries()) {
    const tar = packTree({ root, overlay: i > 0, sourceDateEpoch: EPOCH });
    const { blob, result } = createLayer(tar, compression);
    const info = await store.putBlob(blob);
    const r = await result;
    layers.push({ mediaType: r.mediaType, digest: info.digest, size: info.size });
    diffIds.push(r.diffId);
  }
  const config = await store.putJson(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } },
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = await store.putJson(
    { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers },
    'application/vnd.oci.image.manifest.v1+json',
  );
  await store.tag(tag, manifest);
}

function strataFlatten(store, tag, out) {
  execFileSync(process.execPath, [CLI, '--store', store, 'flatten', tag, '--rootfs', out], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, CI: '1' },
  });
}

function umociTar(store, tag, out) {
  const bundle = path.join(OUT, 'strata-bench-umoci');
  fs.rmSync(bundle, { recursive: true, force: true });
  execFileSync('umoci', ['unpack', '--image', `${store}:${tag}`, bundle], { stdio: 'ignore' });
  execFileSync('tar', [
    '--numeric-owner',
    '--xattrs',
    '--xattrs-include=*',
    '-C',
    `${bundle}/rootfs`,
    '-cf',
    out,
    '.',
  ]);
  fs.rmSync(bundle, { recursive: true, force: true });
}

async function main() {
  if (!fs.existsSync(ROOTFS)) {
    throw new Error(`no rootfs at ${ROOTFS}: run node bench/layer.js first (it builds it)`);
  }
  const uppers = makeUppers(ROOTFS);
  const storeDir = path.join(WORK, 'store');
  fs.rmSync(storeDir, { recursive: true, force: true });
  const store = await Store.open(storeDir);
  await putImage(store, 'bench:gzip', [ROOTFS, ...uppers], 'gzip');
  const a = path.join(OUT, 'strata-bench-flat.tar');
  const b = path.join(OUT, 'strata-bench-umoci.tar');
  const ours = [];
  const theirs = [];
  for (let i = 0; i < REPS; i++) {
    fs.rmSync(a, { force: true });
    fs.rmSync(b, { force: true });
    ours.push(wall(() => strataFlatten(storeDir, 'bench:gzip', a)));
    theirs.push(wall(() => umociTar(storeDir, 'bench:gzip', b)));
  }
  const tarBytes = fs.statSync(a).size;
  const entries = Number(sh(`tar -tf ${a} | wc -l`).trim());
  fs.rmSync(b, { force: true });

  let rss;
  let bigBytes;
  if (BIG !== '0' && fs.existsSync(BIG)) {
    await putImage(store, 'bench:big', [BIG, ...uppers], 'zstd');
    const out = path.join(OUT, 'strata-bench-big.tar');
    const script = `
      const { Store } = require(${JSON.stringify(path.join(__dirname, '../packages/store/dist'))});
      const { flattenToTar } = require(${JSON.stringify(path.join(__dirname, '../packages/imager/dist'))});
      Store.open(${JSON.stringify(storeDir)})
        .then((s) => flattenToTar(s, 'bench:big', ${JSON.stringify(out)}))
        .then((r) => console.log(JSON.stringify({ maxRSS: process.resourceUsage().maxRSS, tarBytes: r.tarBytes })));`;
    const r = JSON.parse(execFileSync(process.execPath, ['-e', script]).toString());
    rss = r.maxRSS * 1024;
    bigBytes = r.tarBytes;
    fs.rmSync(out, { force: true });
  }
  fs.rmSync(a, { force: true });

  const mib = (n) => `${(n / 1048576).toFixed(0)} MiB`;
  const s = (x) => `${x.toFixed(2)} s`;
  const speedup = median(theirs) / median(ours);
  const rows = [
    ['what', 'result'],
    ['---', '---'],
    [
      `image`,
      `3 gzip layers: minbase (${mib(tarBytes)} flat tar, ${entries} entries) + 2 upper layers`,
    ],
    [
      `strata flatten --rootfs out.tar (median of ${REPS})`,
      `${s(median(ours))} (${ours.map(s).join(', ')})`,
    ],
    [
      `umoci unpack + tar -c rootfs (median of ${REPS})`,
      `${s(median(theirs))} (${theirs.map(s).join(', ')})`,
    ],
    ['speed-up (target ≥ 2×)', `${speedup.toFixed(2)}×`],
  ];
  if (rss !== undefined) {
    rows.push([
      `peak RSS flattening a ${mib(bigBytes)} rootfs, 3 zstd layers (target < 250 MB)`,
      `${(rss / 1e6).toFixed(0)} MB`,
    ]);
  }
  console.log(rows.map((r) => `| ${r.join(' | ')} |`).join('\n'));
  console.log(
    JSON.stringify({
      bench: 'flatten',
      strata: ours,
      umociTar: theirs,
      speedup,
      peakRss: rss,
      bigTarBytes: bigBytes,
    }),
  );
  if (speedup < 2 || (rss !== undefined && rss >= 250e6)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
