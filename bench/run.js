// `npm run bench`: runs every benchmark in turn and writes what each printed (its Markdown
// tables and summary lines) into its section of docs/benchmarks.md, with the command, the
// date and the machine's load. Exits non-zero when any benchmark reports a missed target.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const DOC = path.join(ROOT, 'docs', 'benchmarks.md');
const BENCHES = [
  { file: 'layer.js', section: 'Layer codec' },
  { file: 'zstd-impl.js', section: 'Choosing the zstd implementation' },
  { file: 'build.js', section: 'Build' },
  { file: 'flatten.js', section: 'Flatten' },
  { file: 'flatten-arch.js', section: 'Flatten by architecture' },
  { file: 'deep.js', section: 'Deep stacks' },
  { file: 'registry.js', section: 'Registry' },
  { file: 'progress.js', section: 'Progress' },
  { file: 'foreign.js', section: 'Foreign architectures' },
  { file: 'debuild.js', section: 'DEBUILD' },
  { file: 'diff.js', section: 'Diff' },
  { file: 'report.js', section: 'Report' },
  { file: 'repro.js', section: 'Reproducibility' },
  { file: 'sbom.js', section: 'SBOM' },
  { file: 'sources.js', section: 'Sources' },
];
const only = process.argv.slice(2);

function replaceSection(doc, title, body) {
  const head = `## ${title}\n`;
  const start = doc.indexOf(head);
  if (start < 0) return `${doc.trimEnd()}\n\n${head}\n${body}\n`;
  const next = doc.indexOf('\n## ', start + head.length);
  const end = next < 0 ? doc.length : next + 1;
  return `${doc.slice(0, start)}${head}\n${body}\n${next < 0 ? '' : '\n'}${doc.slice(end)}`;
}

let failed = 0;
for (const b of BENCHES) {
  if (only.length && !only.some((o) => b.file.startsWith(o))) continue;
  const load = os.loadavg()[0].toFixed(1);
  const started = new Date().toISOString().slice(0, 16).replace('T', ' ');
  process.stderr.write(`\n== bench/${b.file}\n`);
  const r = spawnSync(process.execPath, [path.join(__dirname, b.file)], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  process.stdout.write(r.stdout ?? '');
  // The JSON summary lines are for scripts; blank lines stay (one at most), as a Markdown table
  // ends only at one.
  const lines = (r.stdout ?? '')
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('{'))
    .filter((l, i, all) => l.trim() !== '' || (i > 0 && all[i - 1].trim() !== ''));
  while (lines.length > 0 && lines[0].trim() === '') lines.shift();
  while (lines.length > 0 && lines[lines.length - 1].trim() === '') lines.pop();
  const status =
    r.status === 0
      ? 'All targets met in this run.'
      : `**The script reported a missed target (exit ${r.status ?? r.signal}).**`;
  const body = [
    `Command: \`npm run bench\` (runs \`node bench/${b.file}\`), ${started} UTC, ${os.cpus().length} cores, load average ${load} at the start.`,
    '',
    ...lines,
    '',
    status,
  ].join('\n');
  fs.writeFileSync(DOC, replaceSection(fs.readFileSync(DOC, 'utf8'), b.section, body));
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
