#!/usr/bin/env node
/*
 * Progress benchmark: `strata push`, `pull` and `flatten` of a minbase template on a terminal
 * (run under `script`, which gives the CLI a pseudo-terminal), with its bars drawn, against the
 * same commands with `--quiet`, on the same terminal, in interleaved pairs.
 *
 *   npm run build && node bench/progress.js
 *
 * Environment: STRATA_BENCH_REPS (default 7), STRATA_BENCH_DIR (default
 * /var/tmp/strata-bench-progress; the template is made there once from the minbase tarball of
 * bench/fixture.js, and reused). Prints a Markdown table (with GNU time, the CPU seconds too,
 * which a loaded machine inflates less than wall time) and one JSON line; exits 1 if a command
 * with progress takes more than 1.03x its wall time with --quiet (median).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { minbaseTar } = require('./fixture');
const { startRegistry } = require('./registry-server');
const { run, median, fmt } = require('./timing');

const REPS = Number(process.env.STRATA_BENCH_REPS || 7);
const DIR = process.env.STRATA_BENCH_DIR || '/var/tmp/strata-bench-progress';
const STRATA = path.join(__dirname, '..', 'packages', 'cli', 'bin', 'strata.js');
const TARGET = 1.03;

const quote = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
// Bars are drawn on a terminal outside CI only.
const env = { ...process.env, TERM: 'xterm' };
delete env.CI;

const TIME = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
const CPU_FILE = path.join(DIR, 'cpu.txt');
const cpu = {
  push: { tty: [], quiet: [] },
  pull: { tty: [], quiet: [] },
  flatten: { tty: [], quiet: [] },
};

/**
 * `strata args` on a pseudo-terminal of 120 columns (a pty made by script has no size): its
 * wall seconds, and (with GNU time) its CPU seconds, user + system, into `cpuTo`: what the
 * machine's load inflates far less than the wall time.
 */
function onTerminal(args, cpuTo) {
  const timed = TIME ? [TIME, '-f', '%U %S', '-o', CPU_FILE] : [];
  const cmd = `stty cols 120 rows 40; exec ${[...timed, process.execPath, STRATA, ...args].map(quote).join(' ')}`;
  const secs = run('script', ['-qec', cmd, '/dev/null'], { env }).secs;
  if (TIME && cpuTo) {
    const [u, sys] = fs
      .readFileSync(CPU_FILE, 'utf8')
      .trim()
      .split('\n')
      .pop()
      .split(' ')
      .map(Number);
    cpuTo.push(u + sys);
  }
  return secs;
}

async function main() {
  fs.mkdirSync(DIR, { recursive: true });
  const store = path.join(DIR, 'store');
  const ls = fs.existsSync(store) ? run(STRATA, ['--store', store, 'ls']).stdout : '';
  if (!ls.includes('minbase:1')) {
    process.stderr.write('making template minbase:1\n');
    run(STRATA, [
      '--store',
      store,
      '-q',
      'template',
      'create',
      minbaseTar(),
      '-t',
      'minbase:1',
      '--name',
      'minbase',
    ]);
  }
  const reg = await startRegistry(DIR);
  const t = {
    push: { tty: [], quiet: [] },
    pull: { tty: [], quiet: [] },
    flatten: { tty: [], quiet: [] },
  };
  try {
    const src = `${reg.host}/bench/minbase:1`;
    run(STRATA, ['--store', store, '-q', 'push', 'minbase:1', src]);
    for (let i = 0; i < REPS; i++) {
      // Alternate which goes first, so that a drift of the machine's load weighs on both.
      const modes = i % 2 ? ['quiet', 'tty'] : ['tty', 'quiet'];
      for (const mode of modes) {
        const q = mode === 'quiet' ? ['-q'] : [];
        // Each push goes to a new repository, so every blob is uploaded.
        t.push[mode].push(
          onTerminal(
            ['--store', store, ...q, 'push', 'minbase:1', `${reg.host}/bench/r${i}${mode}:1`],
            cpu.push[mode],
          ),
        );
        const fresh = fs.mkdtempSync(path.join(DIR, 'pull-'));
        try {
          t.pull[mode].push(
            onTerminal(['--store', fresh, ...q, 'pull', src, '-t', 'minbase:1'], cpu.pull[mode]),
          );
        } finally {
          fs.rmSync(fresh, { recursive: true, force: true });
        }
        const out = path.join(DIR, 'rootfs.tar');
        t.flatten[mode].push(
          onTerminal(
            ['--store', store, ...q, 'flatten', 'minbase:1', '--rootfs', out],
            cpu.flatten[mode],
          ),
        );
        fs.rmSync(out, { force: true });
      }
    }
  } finally {
    await reg.stop();
  }
  console.log(
    `Medians (min–max) of ${REPS} runs each, seconds, minbase template, every command under \`script\` (a pty):`,
  );
  console.log('');
  const withCpu = TIME !== undefined;
  console.log(
    `| command | with progress | --quiet | ratio |${withCpu ? ' CPU s with progress | CPU s --quiet | CPU ratio |' : ''}`,
  );
  console.log(`| --- | --- | --- | --- |${withCpu ? ' --- | --- | --- |' : ''}`);
  const summary = {};
  let missed = false;
  for (const [op, r] of Object.entries(t)) {
    const ratio = median(r.tty) / median(r.quiet);
    summary[op] = { tty: median(r.tty), quiet: median(r.quiet), ratio };
    if (ratio > TARGET) missed = true;
    let cpuCols = '';
    if (withCpu) {
      const c = cpu[op];
      const cpuRatio = median(c.tty) / median(c.quiet);
      summary[op].cpuRatio = cpuRatio;
      cpuCols = ` ${fmt(c.tty)} | ${fmt(c.quiet)} | ${cpuRatio.toFixed(3)} |`;
    }
    console.log(`| ${op} | ${fmt(r.tty)} | ${fmt(r.quiet)} | ${ratio.toFixed(3)} |${cpuCols}`);
  }
  console.log('');
  console.log(
    `Target: progress within ${Math.round((TARGET - 1) * 100)}% of --quiet (median ratio ≤ ${TARGET}).`,
  );
  console.log(JSON.stringify({ bench: 'progress', reps: REPS, ...summary }));
  if (missed) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
