/**
 * Every ```sh block of README.md and docs/*.md runs here, as written, so the documentation
 * cannot drift from the code. The blocks of one file run in order in one directory and one store,
 * as a reader following the page would. What the pages take for granted is provided:
 *   - `strata` on PATH, `$STRATA_STORE` and `$STORE` naming the store, `$PW` a password;
 *   - `./rootfs` (a Debian bookworm minbase), `./debian.list` (apt sources for Debian's mirror),
 *     and a copy of `examples/`;
 *   - `registry.example.com` and `registry.example` stand for a docker-registry on 127.0.0.1.
 * A comment just above a block may say `<!-- docs-test: before: COMMAND -->` (run first,
 * for what the page assumes exists) or `<!-- docs-test: skip: REASON -->`; a skip must name the
 * test file that runs the block instead.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI, REPO_ROOT, SLOW, cleanupTmp, minbaseRootfs, run, show, tmpDir } from './helpers';
import { DEBIAN_SOURCES } from './fixtures/build/harness';
import { Registry, startRegistry } from './registry-fixtures';

jest.setTimeout(SLOW);

interface Block {
  file: string;
  line: number;
  text: string;
  before?: string;
  skip?: string;
}

function blocksOf(file: string): Block[] {
  const lines = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8').split('\n');
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```sh\s*$/.test(lines[i] as string)) continue;
    const end = lines.findIndex((l, j) => j > i && /^```\s*$/.test(l));
    if (end < 0) throw new Error(`${file}:${i + 1}: unterminated code block`);
    const block: Block = { file, line: i + 1, text: lines.slice(i + 1, end).join('\n') };
    let above = i - 1;
    while (above >= 0 && (lines[above] as string).trim() === '') above--;
    const directive = /^<!-- docs-test: (before|skip): (.*) -->$/.exec(lines[above] ?? '');
    if (directive) block[directive[1] as 'before' | 'skip'] = directive[2] as string;
    out.push(block);
    i = end;
  }
  return out;
}

const FILES = [
  'README.md',
  ...fs
    .readdirSync(path.join(REPO_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];
const BLOCKS = FILES.flatMap(blocksOf);

let registry: Registry;
let bin: string;
let minbaseTar: string;
const dirs = new Map<string, string>();

beforeAll(async () => {
  minbaseTar = (await minbaseRootfs()).minbaseTar;
  registry = await startRegistry();
  bin = tmpDir('strata-docs-bin-');
  fs.writeFileSync(
    path.join(bin, 'strata'),
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`,
    { mode: 0o755 },
  );
});

afterAll(async () => {
  await registry?.stop();
  cleanupTmp();
});

/** The directory a page's blocks share, made on its first block. */
async function pageDir(file: string): Promise<string> {
  let dir = dirs.get(file);
  if (dir) return dir;
  dir = tmpDir('strata-docs-');
  fs.mkdirSync(path.join(dir, 'rootfs'));
  const untar = await run('tar', ['-xpf', minbaseTar, '--numeric-owner', '-C', 'rootfs'], {
    cwd: dir,
  });
  if (untar.code !== 0) throw new Error(show(untar));
  fs.writeFileSync(path.join(dir, 'debian.list'), DEBIAN_SOURCES);
  fs.cpSync(path.join(REPO_ROOT, 'examples'), path.join(dir, 'examples'), { recursive: true });
  dirs.set(file, dir);
  return dir;
}

function script(text: string): string {
  const host = `127.0.0.1:${registry.port}`;
  return text.replace(/\bregistry\.example(\.com)?\b/g, host);
}

test('the docs have shell blocks to run', () => {
  expect(BLOCKS.filter((b) => b.file === 'README.md').length).toBeGreaterThanOrEqual(3);
});

test.each(BLOCKS.map((b) => [`${b.file}:${b.line}`, b] as const))('%s', async (_name, block) => {
  if (block.skip !== undefined) {
    // A skipped block must say which test runs it instead, and that test must exist.
    const named = /\be2e\/[\w-]+\.test\.ts\b/.exec(block.skip);
    expect(named).not.toBeNull();
    expect(fs.existsSync(path.join(REPO_ROOT, (named as RegExpExecArray)[0]))).toBe(true);
    return;
  }
  const cwd = await pageDir(block.file);
  const store = path.join(cwd, 'store');
  const body = [block.before, block.text].filter((t) => t !== undefined).join('\n');
  const r = await run('bash', ['-euo', 'pipefail', '-c', script(body)], {
    cwd,
    env: {
      PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      STRATA_STORE: store,
      STORE: store,
      PW: 'not-a-secret',
      SOURCE_DATE_EPOCH: undefined,
      NO_COLOR: '1',
    },
  });
  if (r.code !== 0) throw new Error(`${block.file}:${block.line}: ${show(r)}`);
});
