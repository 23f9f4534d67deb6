import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Digest } from '@strata/oci';
import { makeSources } from '@strata/debian';
import { buildDependsOf, debuildKey, debuildTreeInputs } from './debuild-key';
import { loadContextIgnore } from './ignore';
import { StageKeys } from './stage-keys';
import { DebuildInstruction, parseStratafile } from './stratafile';

test('the names in Build-Depends, -Arch and -Indep, with alternatives, versions, arches and profiles stripped', () => {
  const control = [
    'Source: agent',
    'Build-Depends: debhelper-compat (= 13),',
    ' libfoo-dev:native (>= 1.2) [amd64] <!nocheck>,',
    ' libbar-dev | libbaz-dev',
    'Build-Depends-Arch: libarch-dev',
    'Build-Depends-Indep: python3-sphinx <!nodoc>',
    '',
    'Package: agent',
    'Depends: not-a-build-dep',
    '',
  ].join('\n');
  expect(buildDependsOf(control)).toEqual([
    'debhelper-compat',
    'libarch-dev',
    'libbar-dev',
    'libbaz-dev',
    'libfoo-dev',
    'python3-sphinx',
  ]);
  expect(buildDependsOf('Source: x\n')).toEqual([]);
});

describe('with a .strataignore', () => {
  let ctx: string;
  const put = (rel: string, text = `${rel}\n`) => {
    fs.mkdirSync(path.dirname(path.join(ctx, rel)), { recursive: true });
    fs.writeFileSync(path.join(ctx, rel), text);
  };
  // A mirror that refuses at once: the key is made without an index state.
  const scope = {
    env: new Map(),
    args: new Map(),
    excludes: [],
    sources: makeSources('deb http://127.0.0.1:9/debian bookworm main\n', 'test.list'),
  };
  const ins = (source: string) =>
    parseStratafile(
      `FROM base:1 AS bc\nFROM base:1\nBUILDCHROOT bc\nDEBUILD ${source}\n`,
      'Stratafile',
    ).stages[1]?.steps[1] as DebuildInstruction;
  const keyOf = (source: string) =>
    debuildKey(new StageKeys({ context: ctx }), ctx, {
      scope,
      ins: ins(source),
      source,
      buildchroot: `sha256:${'0'.repeat(64)}` as Digest,
      target: 'amd64',
      inputs: [],
    });

  beforeEach(() => {
    ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-debuild-ignore-'));
    put('src/agent/debian/control', 'Source: agent\n');
    put('src/agent/main.c');
    put('src/agent/.git/HEAD');
    put('src/agent/build.log');
    put('src/agent_1.0.orig.tar.gz');
    put('src/agent_1.0.orig-docs.tar.gz');
    put('.strataignore', '**/.git\n**/*.log\nsrc/*.orig-docs.tar.gz\nsrc/other\n');
  });
  afterEach(() => fs.rmSync(ctx, { recursive: true, force: true }));

  test('a tree is read without what it leaves out, and so are the tarballs beside it', async () => {
    const tree = await debuildTreeInputs(
      ctx,
      ins('./src/agent'),
      './src/agent',
      loadContextIgnore(ctx, undefined),
    );
    expect(tree).toEqual({
      tree: { written: './src/agent', path: './src/agent', filtered: true },
      origs: ['src/agent_1.0.orig.tar.gz'],
    });
    const before = await keyOf('./src/agent');
    put('src/agent/.git/HEAD', 'moved\n');
    put('src/agent/build.log', 'more\n');
    put('src/agent_1.0.orig-docs.tar.gz', 'other\n');
    expect(await keyOf('./src/agent')).toBe(before);
    put('src/agent/main.c', 'changed\n');
    expect(await keyOf('./src/agent')).not.toBe(before);
  });

  test('a source it leaves out, or a .dsc that lists such a file, fails the DEBUILD line', async () => {
    put('src/other/debian/control', 'Source: other\n');
    await expect(keyOf('./src/other')).rejects.toThrow(
      'Stratafile:4:1: DEBUILD ./src/other: not in the build context: ',
    );
    put('src/agent_1.0.dsc', 'Source: agent\nFiles:\n 0 1 agent_1.0.orig-docs.tar.gz\n');
    await expect(keyOf('./src/agent_1.0.dsc')).rejects.toThrow(
      /DEBUILD \.\/src\/agent_1\.0\.orig-docs\.tar\.gz: not in the build context: \S+ excludes it/,
    );
  });
});
