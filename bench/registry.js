#!/usr/bin/env node
/*
 * Registry benchmark: `strata push` / `strata pull` of a minbase template against `skopeo copy`
 * of the same image, in the same run, each against its own fresh docker-registry on 127.0.0.1.
 *
 *   npm run build && node bench/registry.js
 *
 * Two templates: the minbase one (where process start weighs) and one of about 1 GB in 5 layers
 * (where the transfer does; STRATA_BENCH_BIG_REPS, default 3). STRATA_BENCH_ONLY=small or big
 * runs one of them.
 *
 * Environment: STRATA_BENCH_REPS (default 25), STRATA_BENCH_COMPRESSION (default gzip, as in the
 * peer figures), STRATA_BENCH_DIR (default /var/tmp/strata-bench-registry; the template is made
 * once from /var/tmp/strata-bench/rootfs, or else the minbase tarball of bench/fixture.js, and reused).
 * Both tools are timed as whole processes, strata through the package's bin (bin/strata.js) in
 * the environment this runs in. Prints a Markdown table
 * and one JSON line; exits 1 if strata takes more than 1.25x skopeo's time (median) for push or
 * pull: at this size (one 61 MB layer) the start of a process weighs on both tools' times.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { minbaseTar } = require('./fixture');
const { startRegistry } = require('./registry-server');

// On a 2-core machine one push varies by ±10% from run to run (most of it in docker-registry), a
// median of 7 moved by as much as 0.05 s between runs, and with 15 pairs the push ratio still
// ranged over 0.91-1.05 in one session's runs; 25 pairs take about 100 s.
const REPS = Number(process.env.STRATA_BENCH_REPS || 25);
const COMPRESSION = process.env.STRATA_BENCH_COMPRESSION || 'gzip';
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench-registry';
// What a user runs: the package's bin.
const STRATA = path.join(__dirname, '..', 'packages', 'cli', 'bin', 'strata.js');
const ROOTFS = '/var/tmp/strata-bench/rootfs';
const TAG = `minbase-${COMPRESSION}`;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
function run(cmd, args, env) {
  return execFileSync(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
    ...(env ? { env: { ...process.env, ...env } } : {}),
  }).toString();
}
/** Seconds that `fn` takes, awaited in this process. */
async function clock(fn) {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** skopeo copy from an OCI layout to a registry on loopback (plain http), timed. */
const skopeoPush = (layout, ref) =>
  timed('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}`, `docker://${ref}`]);

/** skopeo copy from a registry on loopback (plain http) into an OCI layout, timed. */
const skopeoPull = (ref, layout) =>
  timed('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${layout}`]);

function timed(cmd, args, env) {
  const t = process.hrtime.bigint();
  run(cmd, args, env);
  return Number(process.hrtime.bigint() - t) / 1e9;
}
/** The minbase template, where process start weighs as much as the transfer. */
async function benchSmall() {
  const store = path.join(DIR, 'store');
  const ls = fs.existsSync(store) ? run(STRATA, ['--store', store, 'ls']) : '';
  if (!ls.includes(`${TAG}:latest`)) {
    const src = fs.existsSync(ROOTFS) ? ROOTFS : minbaseTar();
    process.stderr.write(`making template ${TAG} from ${src}\n`);
    run(STRATA, [
      '--store',
      store,
      'template',
      'create',
      src,
      '-t',
      TAG,
      '--name',
      'minbase',
      '--compression',
      COMPRESSION,
    ]);
  }
  const t = {
    strataPush: [],
    skopeoPush: [],
    strataPull: [],
    skopeoPull: [],
    rePush: [],
    mount: [],
    libPush: [],
    libPull: [],
    startup: [],
  };
  const { Store } = require('../packages/store/dist');
  const { push, pull } = require('../packages/registry/dist');
  const { parseReference } = require('../packages/oci/dist');
  const lib = await Store.open(store);
  for (let rep = 0; rep < REPS; rep++) {
    const a = await startRegistry(DIR);
    const b = await startRegistry(DIR);
    try {
      // Alternate who goes first, so neither always gets a warm page cache.
      const pushes = [
        () =>
          t.strataPush.push(timed(STRATA, ['--store', store, 'push', TAG, `${a.host}/bench:1`])),
        () => t.skopeoPush.push(skopeoPush(`${store}:${TAG}:latest`, `${b.host}/bench:1`)),
      ];
      if (rep % 2) pushes.reverse();
      for (const p of pushes) p();
      t.rePush.push(timed(STRATA, ['--store', store, 'push', TAG, `${a.host}/bench:1`]));
      t.mount.push(timed(STRATA, ['--store', store, 'push', TAG, `${a.host}/other:1`]));
      const s1 = fs.mkdtempSync(path.join(DIR, 'pull-strata-'));
      const s2 = fs.mkdtempSync(path.join(DIR, 'pull-skopeo-'));
      const pulls = [
        () => t.strataPull.push(timed(STRATA, ['--store', s1, 'pull', `${a.host}/bench:1`])),
        () => t.skopeoPull.push(skopeoPull(`${b.host}/bench:1`, `${s2}:bench`)),
      ];
      if (rep % 2) pulls.reverse();
      for (const p of pulls) p();
      fs.rmSync(s1, { recursive: true, force: true });
      fs.rmSync(s2, { recursive: true, force: true });
      // The same work as library calls, without starting a process.
      const c = await startRegistry(DIR);
      try {
        t.libPush.push(await clock(() => push(lib, TAG, parseReference(`${c.host}/lib:1`))));
        const s3 = fs.mkdtempSync(path.join(DIR, 'pull-lib-'));
        const st3 = await Store.open(s3);
        t.libPull.push(await clock(() => pull(st3, parseReference(`${c.host}/lib:1`))));
        fs.rmSync(s3, { recursive: true, force: true });
      } finally {
        await c.stop();
      }
      t.startup.push(timed(STRATA, ['--help']));
    } finally {
      await a.stop();
      await b.stop();
    }
  }
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  const f = (x) => x.toFixed(2);
  const range = (xs) => `${f(Math.min(...xs))}–${f(Math.max(...xs))}`;
  console.log(
    `\n### Registry: minbase template (${COMPRESSION} layer), docker-registry on loopback, median of ${REPS}\n`,
  );
  console.log('| operation | strata s | skopeo copy s | strata / skopeo |');
  console.log('|---|---|---|---|');
  console.log(
    `| push to an empty registry | ${f(m.strataPush)} (${range(t.strataPush)}) | ${f(m.skopeoPush)} (${range(t.skopeoPush)}) | ${(m.strataPush / m.skopeoPush).toFixed(2)}× |`,
  );
  console.log(
    `| pull into an empty store / OCI layout | ${f(m.strataPull)} (${range(t.strataPull)}) | ${f(m.skopeoPull)} (${range(t.skopeoPull)}) | ${(m.strataPull / m.skopeoPull).toFixed(2)}× |`,
  );
  console.log(`| identical re-push (HEAD skips) | ${f(m.rePush)} | | |`);
  console.log(`| push to another repo (cross-repo mount) | ${f(m.mount)} | | |`);
  console.log(`| push, library call (no process start) | ${f(m.libPush)} | | |`);
  console.log(`| pull, library call (no process start) | ${f(m.libPull)} | | |`);
  console.log(`| \`strata --help\` (process start alone) | ${f(m.startup)} | | |`);
  console.log(`\nload average at the end: ${loadavg()}`);
  console.log(
    JSON.stringify({
      bench: 'registry',
      compression: COMPRESSION,
      reps: REPS,
      medians: m,
      samples: t,
    }),
  );
  // At this size (one 61 MB layer) process start weighs on both tools' times.
  return withinLimit(m, 1.25);
}

/** Print each of push and pull that takes more than `limit` times skopeo's median; true if none. */
function withinLimit(m, limit) {
  const missed = [];
  if (m.strataPush > limit * m.skopeoPush) missed.push('push');
  if (m.strataPull > limit * m.skopeoPull) missed.push('pull');
  for (const what of missed)
    console.log(`Missed: ${what} takes more than ${limit}× skopeo's time (median).`);
  return missed.length === 0;
}

// The large case: a template of about 1 GB in 5 layers, where the transfer, not process start,
// is what users wait for. Its layers are tars of incompressible bytes (an AES-CTR keystream from a
// fixed key, so every run pushes the same digests), zstd-framed as strata's own layers are.
const BIG_REPS = Number(process.env.STRATA_BENCH_BIG_REPS || 3);
const BIG_LAYERS = 5;
const BIG_LAYER_BYTES = 200 << 20;
const BIG_TAG = 'big';

/** A ustar header for a regular file. */
function tarHeader(name, size) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** Layer `n` as a tar stream: 50 files of 4 MiB from a keystream seeded by `n`. */
function* bigLayerTar(n) {
  const crypto = require('node:crypto');
  const key = crypto.createHash('sha256').update(`strata-bench-layer-${n}`).digest();
  const cipher = crypto.createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const FILE = 4 << 20;
  const zeros = Buffer.alloc(1 << 20);
  for (let f = 0; f < BIG_LAYER_BYTES / FILE; f++) {
    yield tarHeader(`data/layer${n}/file${f}`, FILE);
    for (let i = 0; i < FILE; i += zeros.length) yield cipher.update(zeros);
  }
  yield Buffer.alloc(1024);
}

/** Make the big template in `store` through the library (once; later runs reuse it). */
async function makeBigTemplate(store) {
  const { Store } = require('../packages/store/dist');
  const crypto = require('node:crypto');
  const { Readable } = require('node:stream');
  const s = await Store.open(store);
  const layers = [];
  for (let n = 0; n < BIG_LAYERS; n++) {
    const diff = crypto.createHash('sha256');
    const zstd = spawn('zstd', ['-1', '-q', '-c', '--no-check'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const feed = (async () => {
      for (const c of bigLayerTar(n)) {
        diff.update(c);
        if (!zstd.stdin.write(c)) await new Promise((r) => zstd.stdin.once('drain', r));
      }
      zstd.stdin.end();
    })();
    const info = await s.putBlob(Readable.from(zstd.stdout));
    await feed;
    layers.push({
      descriptor: {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd',
        digest: info.digest,
        size: info.size,
      },
      diffId: `sha256:${diff.digest('hex')}`,
    });
  }
  const config = await s.putJson(
    {
      created: '2026-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created_by: `bench layer ${i}` })),
    },
    'application/vnd.oci.image.config.v1+json',
  );
  const manifest = await s.putJson(
    {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config,
      layers: layers.map((l) => l.descriptor),
    },
    'application/vnd.oci.image.manifest.v1+json',
  );
  await s.tag(BIG_TAG, manifest);
  return layers.reduce((a, l) => a + l.descriptor.size, 0);
}

/** Push and pull the big template, strata against skopeo, each into its own empty registry. */
async function benchBig() {
  const store = path.join(DIR, 'store-big');
  const ls = fs.existsSync(store) ? run(STRATA, ['--store', store, 'ls']) : '';
  if (!ls.includes(`${BIG_TAG}:latest`)) {
    process.stderr.write(`making the ${BIG_LAYERS}-layer template ${BIG_TAG} in ${store}\n`);
    fs.rmSync(store, { recursive: true, force: true });
    await makeBigTemplate(store);
  }
  const { Store } = require('../packages/store/dist');
  const s = await Store.open(store);
  const root = await s.resolve(BIG_TAG);
  const manifest = JSON.parse((await s.readBlob(root.digest, root.size)).toString());
  const bytes = manifest.layers.reduce((a, l) => a + l.size, 0) + manifest.config.size;
  const t = {
    strataPush: [],
    skopeoPush: [],
    strataPull: [],
    skopeoPull: [],
    libPush: [],
    libPull: [],
  };
  const { push, pull } = require('../packages/registry/dist');
  const { parseReference } = require('../packages/oci/dist');
  for (let rep = 0; rep < BIG_REPS; rep++) {
    const a = await startRegistry(DIR);
    const b = await startRegistry(DIR);
    const s1 = fs.mkdtempSync(path.join(DIR, 'pull-strata-'));
    const s2 = fs.mkdtempSync(path.join(DIR, 'pull-skopeo-'));
    try {
      const pushes = [
        () =>
          t.strataPush.push(timed(STRATA, ['--store', store, 'push', BIG_TAG, `${a.host}/big:1`])),
        () => t.skopeoPush.push(skopeoPush(`${store}:${BIG_TAG}:latest`, `${b.host}/big:1`)),
      ];
      const pulls = [
        () => t.strataPull.push(timed(STRATA, ['--store', s1, 'pull', `${a.host}/big:1`])),
        () => t.skopeoPull.push(skopeoPull(`${b.host}/big:1`, `${s2}:big`)),
      ];
      // Alternate who goes first, so neither always gets the warmer page cache.
      if (rep % 2) {
        pushes.reverse();
        pulls.reverse();
      }
      for (const p of pushes) p();
      for (const p of pulls) p();
    } finally {
      fs.rmSync(s1, { recursive: true, force: true });
      fs.rmSync(s2, { recursive: true, force: true });
      await a.stop();
      await b.stop();
    }
    // The transfer alone, as library calls: no process start, and the store made beforehand.
    const c = await startRegistry(DIR);
    const s3 = fs.mkdtempSync(path.join(DIR, 'pull-lib-'));
    try {
      t.libPush.push(await clock(() => push(s, BIG_TAG, parseReference(`${c.host}/lib:1`))));
      const st3 = await Store.open(s3);
      t.libPull.push(await clock(() => pull(st3, parseReference(`${c.host}/lib:1`))));
    } finally {
      fs.rmSync(s3, { recursive: true, force: true });
      await c.stop();
    }
  }
  const m = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, median(v)]));
  const f = (x) => x.toFixed(2);
  const all = (xs) => xs.map(f).join(', ');
  console.log(
    `\n### Registry: ${(bytes / 1e9).toFixed(2)} GB template in ${manifest.layers.length} layers (zstd, incompressible), docker-registry on loopback, median of ${BIG_REPS}\n`,
  );
  console.log('| operation | strata s | skopeo copy s | strata / skopeo |');
  console.log('|---|---|---|---|');
  console.log(
    `| push to an empty registry | ${f(m.strataPush)} (${all(t.strataPush)}) | ${f(m.skopeoPush)} (${all(t.skopeoPush)}) | ${(m.strataPush / m.skopeoPush).toFixed(2)}× |`,
  );
  console.log(
    `| pull into an empty store / OCI layout | ${f(m.strataPull)} (${all(t.strataPull)}) | ${f(m.skopeoPull)} (${all(t.skopeoPull)}) | ${(m.strataPull / m.skopeoPull).toFixed(2)}× |`,
  );
  console.log(
    `| push, library call (no process start) | ${f(m.libPush)} (${all(t.libPush)}) | | |`,
  );
  console.log(
    `| pull, library call (no process start, store made before) | ${f(m.libPull)} (${all(t.libPull)}) | | |`,
  );
  console.log(`\nload average at the end: ${loadavg()}`);
  console.log(
    JSON.stringify({ bench: 'registry-big', bytes, reps: BIG_REPS, medians: m, samples: t }),
  );
  // At this size the transfer is what users wait for: at least skopeo's speed.
  return withinLimit(m, 1.0);
}

function loadavg() {
  return require('node:os')
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ');
}

async function main() {
  fs.mkdirSync(DIR, { recursive: true });
  console.log(`load average at the start: ${loadavg()}`);
  const only = process.env.STRATA_BENCH_ONLY;
  let ok = true;
  if (only !== 'big') ok = (await benchSmall()) && ok;
  if (only !== 'small') ok = (await benchBig()) && ok;
  if (!ok) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(2);
});
