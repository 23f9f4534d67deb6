#!/usr/bin/env node
/*
 * Build benchmark, in one run (ratios within a run are what count on these noisy machines):
 *  (a) `strata build` of `FROM base / INSTALL curl openssh-server python3` (base template present)
 *      vs `mmdebstrap --variant=minbase --include=curl,openssh-server,python3 bookworm` from scratch;
 *  (b) a no-op (fully cached) rebuild, wall time of the whole `strata` process;
 *  (c) the same `apt-get install` with `buildah build` (overlay, chroot isolation, --layers, no cache);
 *  (d) the INSTALL delta layer vs the files that `apt-get install` adds (minus apt lists/caches);
 *  (e) the derived build against the same `apt-get update && apt-get install` in a plain chroot of
 *      the base's own tree, alternating, with the same sources, .debs and kept apt lists (see
 *      chrootComparison). STRATA_BENCH_CHROOT_ONLY=1 runs this comparison alone.
 * Package access is the same for all three: the .debs are already local. strata's .deb cache is
 * pre-filled by a warm-up build, mmdebstrap gets a pre-filled cache through setup hooks (as the
 * engine's BOOTSTRAP does), and buildah gets the same cache bind-mounted at
 * /var/cache/apt/archives. All three still run `apt-get update` against deb.debian.org.
 *
 *   npm run build && node bench/build.js
 *
 * Environment: STRATA_BENCH_DIR (default /var/tmp/strata-bench/build), STRATA_BENCH_REPS (3),
 * STRATA_BENCH_CHROOT_REPS (5).
 * Writes the table into docs/benchmarks.md under "## Build" when STRATA_BENCH_WRITE=1.
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run, median, fmt } = require('./timing');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const CLI = path.join(ROOT, 'packages/cli/bin/strata.js');
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench/build';
const REPS = Number(process.env.STRATA_BENCH_REPS || 3);
const STORE = path.join(DIR, 'store');
const DEBS = path.join(DIR, 'debs');
const PKGS = ['curl', 'openssh-server', 'python3'];
const SOURCES = path.join(DIR, 'sources.list');
const MIRROR_LINES =
  'deb http://deb.debian.org/debian bookworm main\n' +
  'deb http://deb.debian.org/debian bookworm-updates main\n' +
  'deb http://deb.debian.org/debian-security bookworm-security main\n';

const strata = (args, opts) => run(process.execPath, [CLI, '--store', STORE, ...args], opts);
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
const has = (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

function derivedContext() {
  const ctx = path.join(DIR, 'derived');
  fs.mkdirSync(ctx, { recursive: true });
  fs.writeFileSync(path.join(ctx, 'Stratafile'), `FROM base:bench\nINSTALL ${PKGS.join(' ')}\n`);
  return ctx;
}

/** Sum of regular-file bytes in an uncompressed tar stream (GNU tar verbose listing). */
function tarStats(blob) {
  // The derived build uses Strata's default (zstd); GNU tar sniffs the compression itself.
  const head = Buffer.alloc(4);
  const fd = fs.openSync(blob, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  const zstd = head.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
  const list = run('sh', ['-c', `tar -tvf '${blob}'`]).stdout.split('\n');
  let files = 0;
  for (const l of list) {
    const m = /^-\S+\s+\S+\s+(\d+)\s/.exec(l);
    if (m) files += Number(m[1]);
  }
  const tarBytes = Number(
    run('sh', ['-c', `${zstd ? 'zstd' : 'gzip'} -dc '${blob}' | wc -c`]).stdout.trim(),
  );
  return { files, tarBytes };
}

/**
 * (e) What a derived build costs beyond its apt work: `strata build --no-cache` (base unpacked
 * in the store) against the same `apt-get update && apt-get install` in a plain chroot of the
 * base's flattened tree, a fresh copy for each rep, alternating. Both see the same sources, the
 * same local .debs, apt lists kept from the run before (strata keeps them in its store; the
 * chroot gets a kept host directory), dpkg's --force-unsafe-io (strata's apt.conf sets it) and a
 * policy-rc.d that keeps sshd from starting. The chroot's copy and its mount teardown are not
 * timed; its proc/sys/dev mounts are.
 */
function chrootComparison(buildArgs) {
  const reps = Number(process.env.STRATA_BENCH_CHROOT_REPS || 5);
  const tree = path.join(DIR, 'chroot-base.tar');
  if (!fs.existsSync(tree)) strata(['flatten', 'base:bench', '--rootfs', tree]);
  const lists = path.join(DIR, 'chroot-lists');
  fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
  const root = path.join(DIR, 'chroot-root');
  const prepare = () => {
    // Synced, so that the chroot's apt does not pay for writing back the fresh copy.
    run('sh', [
      '-c',
      `rm -rf '${root}' && mkdir '${root}' && tar -xpf '${tree}' -C '${root}' && sync`,
    ]);
    for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists'])
      fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.writeFileSync(path.join(root, 'etc/apt/sources.list'), MIRROR_LINES);
    fs.copyFileSync('/etc/resolv.conf', path.join(root, 'etc/resolv.conf'));
    fs.writeFileSync(
      path.join(root, 'etc/apt/apt.conf.d/99bench'),
      'Dpkg::Options { "--force-unsafe-io"; };\nAcquire::Languages "none";\n',
    );
    fs.writeFileSync(path.join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', {
      mode: 0o755,
    });
  };
  // One mount namespace per rep, so that nothing is left mounted on the host.
  const script =
    `set -e; R='${root}'; mount -t proc proc "$R/proc"; mount --rbind /sys "$R/sys"; ` +
    `mount --rbind /dev "$R/dev"; mount --bind '${DEBS}' "$R/var/cache/apt/archives"; ` +
    `mount --bind '${lists}' "$R/var/lib/apt/lists"; ` +
    `chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 ` +
    `DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -q && apt-get install -y -q ` +
    `--no-install-recommends ${PKGS.join(' ')}'`;
  const chroot = () =>
    run('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script]).secs;
  prepare();
  chroot(); // warm-up: fills the chroot's kept lists
  const ours = [];
  const plain = [];
  for (let i = 0; i < reps; i++) {
    // Alternate which goes first, so that neither always follows the other's page-cache state.
    const pair = [
      () => {
        run('sync'); // as the chroot's copy is: neither pays for the other's writeback
        ours.push(strata(['build', '--no-cache', ...buildArgs.slice(1)]).secs);
      },
      () => {
        prepare();
        plain.push(chroot());
      },
    ];
    if (i % 2) pair.reverse();
    for (const f of pair) f();
  }
  fs.rmSync(root, { recursive: true, force: true });
  return { ours, plain, ratio: median(ours) / median(plain) };
}

/** A derived build may cost this much more than its apt work in a plain chroot. */
const CHROOT_TARGET = 1.15;

function chrootRows(c) {
  return [
    [
      `derived build, alternating with the chroot below: \`strata build --no-cache\` (n=${c.ours.length})`,
      fmt(c.ours),
    ],
    [
      `plain chroot of the base's tree: \`apt-get update && apt-get install -y ${PKGS.join(' ')}\` (n=${c.plain.length})`,
      fmt(c.plain),
    ],
  ];
}

function reportChroot(c) {
  const lines = [
    '| what | wall s (median (min–max)) |',
    '|---|---|',
    ...chrootRows(c).map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `Derived build / plain chroot = ${c.ratio.toFixed(2)}× (target ≤ ${CHROOT_TARGET}×).`,
  ];
  console.log(lines.join('\n'));
  console.log(JSON.stringify({ ours: c.ours, plain: c.plain, ratio: c.ratio }));
  if (c.ratio > CHROOT_TARGET) process.exitCode = 1;
}

function main() {
  fs.mkdirSync(DEBS, { recursive: true });
  fs.writeFileSync(SOURCES, MIRROR_LINES);
  const rows = [];
  const json = {};

  // The base template (gzip layers so buildah/umoci can read them).
  const haveBase =
    spawnSync(process.execPath, [CLI, '--store', STORE, 'inspect', 'base:bench'], {
      stdio: 'ignore',
    }).status === 0;
  if (!haveBase) {
    const b = path.join(DIR, 'base');
    fs.mkdirSync(b, { recursive: true });
    fs.writeFileSync(
      path.join(b, 'Stratafile'),
      'FROM scratch\nBOOTSTRAP --variant=minbase bookworm\n',
    );
    strata([
      'build',
      '-q',
      '--compression',
      'gzip',
      '--apt-sources',
      SOURCES,
      '-t',
      'base:bench',
      b,
    ]);
  }
  const ctx = derivedContext();
  // The derived build uses Strata's default compression (zstd): mmdebstrap writes a plain
  // directory and buildah an uncompressed layer, so neither pays for gzip either.
  const buildArgs = ['build', '-q', '--json', '--apt-sources', SOURCES, '-t', 'derived:bench', ctx];

  // Warm-up: fills strata's .deb cache; then the shared cache for mmdebstrap and buildah.
  strata(['build', '--no-cache', ...buildArgs.slice(1)]);
  const storeDebs = path.join(STORE, '.strata/apt/archives');
  run('sh', ['-c', `cp -an '${storeDebs}'/*.deb '${DEBS}'/`]);
  const vsChroot = chrootComparison(buildArgs);
  if (process.env.STRATA_BENCH_CHROOT_ONLY === '1') return reportChroot(vsChroot);
  const mmArgs = (target) => [
    '--mode=root',
    '--format=directory',
    '--variant=minbase',
    `--include=${PKGS.join(',')}`,
    '--skip=download/empty',
    '--setup-hook=mkdir -p "$1/var/cache/apt/archives/"',
    `--setup-hook=sync-in ${DEBS} /var/cache/apt/archives/`,
    `--customize-hook=sync-out /var/cache/apt/archives/ ${DEBS}`,
    'bookworm',
    target,
    SOURCES,
  ];
  const mmTarget = path.join(DIR, 'mm-root');
  fs.rmSync(mmTarget, { recursive: true, force: true });
  run('mmdebstrap', mmArgs(mmTarget)); // warm-up: fills the cache with the essential set too
  run('sh', ['-c', `cp -an '${DEBS}'/*.deb '${storeDebs}'/`]);

  const ours = [];
  const mm = [];
  const bh = [];
  let layerDigest;
  for (let i = 0; i < REPS; i++) {
    const r = strata(['build', '--no-cache', ...buildArgs.slice(1)]);
    ours.push(r.secs);
    layerDigest = JSON.parse(r.stdout).layers[1].digest;
    fs.rmSync(mmTarget, { recursive: true, force: true });
    mm.push(run('mmdebstrap', mmArgs(mmTarget)).secs);
  }
  fs.rmSync(mmTarget, { recursive: true, force: true });
  rows.push([
    `derived build, base present: \`strata build --no-cache\` (FROM base, INSTALL ${PKGS.join(' ')})`,
    fmt(ours),
  ]);
  rows.push([
    `\`mmdebstrap --variant=minbase --include=${PKGS.join(',')} bookworm\` from scratch`,
    fmt(mm),
  ]);
  json.derived = median(ours);
  json.mmdebstrap = median(mm);
  rows.push(...chrootRows(vsChroot));
  json.derivedVsChroot = vsChroot.ratio;

  // (b) no-op rebuild
  strata(buildArgs.filter((a) => a !== '--json'));
  const noop = [];
  for (let i = 0; i < 5; i++) noop.push(strata(buildArgs).secs);
  rows.push(['no-op rebuild (all steps cached), whole `strata build` process', fmt(noop)]);
  json.noop = median(noop);

  // (c) buildah, same base image, same apt-get install, same local .debs.
  let buildahDelta;
  if (has('buildah')) {
    run('skopeo', [
      'copy',
      `oci:${STORE}:base:bench`,
      'containers-storage:localhost/strata-bench-base:latest',
    ]);
    const cf = path.join(DIR, 'Containerfile');
    fs.writeFileSync(
      cf,
      'FROM localhost/strata-bench-base:latest\n' +
        `RUN apt-get update -q && apt-get install -y -q --no-install-recommends ${PKGS.join(' ')}\n`,
    );
    fs.writeFileSync(path.join(DIR, 'buildah-sources.list'), MIRROR_LINES);
    for (let i = 0; i < REPS; i++) {
      bh.push(
        run('buildah', [
          '--storage-driver=overlay',
          'build',
          '--isolation=chroot',
          '--layers',
          '--no-cache',
          '-v',
          `${DEBS}:/var/cache/apt/archives`,
          '-v',
          `${path.join(DIR, 'buildah-sources.list')}:/etc/apt/sources.list:ro`,
          '-t',
          'strata-bench-derived',
          '-f',
          cf,
          DIR,
        ]).secs,
      );
    }
    rows.push([
      '`buildah build` (overlay, chroot isolation, --layers, --no-cache), same RUN',
      fmt(bh),
    ]);
    json.buildah = median(bh);
    // What that install added: the buildah layer's files, minus apt lists/caches/logs.
    const out = run('sh', [
      '-c',
      `set -e; c=$(buildah --storage-driver=overlay from strata-bench-derived); m=$(buildah --storage-driver=overlay mount $c); ` +
        `b=$(buildah --storage-driver=overlay from localhost/strata-bench-base:latest); bm=$(buildah --storage-driver=overlay mount $b); ` +
        `cd "$m"; find . -xdev -type f ! -path './var/lib/apt/lists/*' ! -path './var/cache/apt/*' ! -path './var/log/*' ! -name '*-old' -printf '%s %p\\n' | ` +
        `while read -r s p; do if [ ! -f "$bm/$p" ] || ! cmp -s "$p" "$bm/$p"; then echo "$s"; fi; done | awk '{t+=$1} END {print t+0}'; ` +
        `buildah --storage-driver=overlay rm $c $b >/dev/null`,
    ]);
    buildahDelta = Number(out.stdout.trim());
  } else {
    rows.push(['`buildah build`', 'not installed (apt-get install buildah)']);
  }

  // (d) the delta layer
  const blob = path.join(STORE, 'blobs/sha256', layerDigest.slice(7));
  const st = tarStats(blob);
  rows.push([
    'INSTALL delta layer: uncompressed tar / file bytes in it / zstd blob',
    `${mb(st.tarBytes)} / ${mb(st.files)} / ${mb(fs.statSync(blob).size)}`,
  ]);
  if (buildahDelta !== undefined)
    rows.push([
      "files the same `apt-get install` adds or changes, minus apt lists/caches/logs (from buildah's result)",
      mb(buildahDelta),
    ]);
  json.layerTar = st.tarBytes;
  json.layerFiles = st.files;
  json.installAdds = buildahDelta;

  const ratio = (a, b) => (a / b).toFixed(2);
  const lines = [
    '| what | wall s (median (min–max)) |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `Ratios: mmdebstrap / strata = ${ratio(json.mmdebstrap, json.derived)}×` +
      (json.buildah ? `, buildah / strata = ${ratio(json.buildah, json.derived)}×` : '') +
      `; derived build / plain chroot = ${ratio(median(vsChroot.ours), median(vsChroot.plain))}×` +
      `; no-op rebuild ${json.noop.toFixed(2)} s.`,
  ];
  // The targets: a no-op rebuild under 0.5 s, a derived build at least 3x faster than mmdebstrap
  // from scratch and no slower than buildah, and a delta layer no larger than what the install
  // adds.
  const missed = [];
  if (json.noop >= 0.5) missed.push(`no-op rebuild ${json.noop.toFixed(2)} s (target < 0.5 s)`);
  if (json.mmdebstrap / json.derived < 3)
    missed.push(`mmdebstrap / strata = ${ratio(json.mmdebstrap, json.derived)}× (target ≥ 3×)`);
  if (json.buildah !== undefined && json.buildah < json.derived)
    missed.push(`buildah / strata = ${ratio(json.buildah, json.derived)}× (target ≥ 1×)`);
  if (vsChroot.ratio > CHROOT_TARGET)
    missed.push(
      `derived build / plain chroot = ${ratio(median(vsChroot.ours), median(vsChroot.plain))}× (target ≤ ${CHROOT_TARGET}×)`,
    );
  if (buildahDelta !== undefined && st.files > buildahDelta)
    missed.push(`delta layer holds ${mb(st.files)} of files, the install adds ${mb(buildahDelta)}`);
  for (const m of missed) lines.push(`Missed: ${m}.`);
  const table = lines.join('\n');
  console.log(table);
  console.log(JSON.stringify(json));
  if (missed.length) process.exitCode = 1;
  if (process.env.STRATA_BENCH_WRITE === '1') {
    const doc = path.join(ROOT, 'docs/benchmarks.md');
    const text = fs.readFileSync(doc, 'utf8');
    const section =
      `## Build\n\nCommand: \`npm run build && node bench/build.js\` (n=${REPS}, the no-op rebuild n=5; ` +
      `.debs local for all three, see the header of bench/build.js). ${new Date().toISOString().slice(0, 10)}, ` +
      `${require('node:os').cpus().length} cores, load average ${require('node:os').loadavg()[0].toFixed(1)} at the end.\n\n${table}\n\n`;
    fs.writeFileSync(doc, text.replace(/## Build\n[\s\S]*?(?=\n## |$)/, section.trimEnd() + '\n'));
  }
}

main();
