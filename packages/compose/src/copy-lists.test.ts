import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { copyListsBind, heredocsBind } from './copy-lists';
import { ContextIgnore } from './ignore';

describe('copyListsBind', () => {
  let ctx: string;
  let work: string;
  beforeEach(() => {
    ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-lists-ctx-'));
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-lists-work-'));
    for (const f of ['a/keep', 'a/x.log', 'b/y'])
      fs.mkdirSync(path.dirname(path.join(ctx, f)), { recursive: true });
    for (const f of ['a/keep', 'a/x.log', 'b/y']) fs.writeFileSync(path.join(ctx, f), f);
  });
  afterEach(() => {
    fs.rmSync(ctx, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('writes the kept list of each filtered source at its index and binds them read-only', async () => {
    const ignore = ContextIgnore.parse('*/*.log\n', 'i');
    const bind = await copyListsBind(
      work,
      ctx,
      [
        { written: 'b', path: 'b' },
        { written: 'a', path: 'a', filtered: true },
      ],
      ignore,
    );
    expect(bind).toEqual({
      source: path.join(work, 'copy-lists'),
      target: 'copy-lists',
      readOnly: true,
    });
    expect(fs.readdirSync(path.join(work, 'copy-lists'))).toEqual(['1']);
    expect(fs.readFileSync(path.join(work, 'copy-lists', '1'), 'utf8')).toBe('.\0keep\0');
  });

  test('no list and no bind when no source is filtered, or there is no ignore file', async () => {
    const ignore = ContextIgnore.parse('*/*.log\n', 'i');
    expect(await copyListsBind(work, ctx, [{ written: 'b', path: 'b' }], ignore)).toBeUndefined();
    expect(
      await copyListsBind(work, ctx, [{ written: 'a', path: 'a', filtered: true }], undefined),
    ).toBeUndefined();
    expect(await copyListsBind(work, ctx, undefined, ignore)).toBeUndefined();
    expect(fs.existsSync(path.join(work, 'copy-lists'))).toBe(false);
  });
});

describe('heredocsBind', () => {
  let work: string;
  let mask: number;
  beforeEach(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-heredocs-work-'));
    mask = process.umask(0o077);
  });
  afterEach(() => {
    process.umask(mask);
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('writes each here-document at its index, mode 0644 whatever the umask, and binds them read-only', async () => {
    const loc = { file: 'Stratafile', line: 2, column: 6 };
    const bind = await heredocsBind(work, [
      { name: 'a.conf', content: 'one\n', loc },
      { name: 'b.conf', content: '', loc },
    ]);
    expect(bind).toEqual({
      source: path.join(work, 'heredocs'),
      target: 'heredocs',
      readOnly: true,
    });
    const dir = path.join(work, 'heredocs');
    expect(fs.readdirSync(dir).sort()).toEqual(['0', '1']);
    expect(fs.readFileSync(path.join(dir, '0'), 'utf8')).toBe('one\n');
    expect(fs.readFileSync(path.join(dir, '1'), 'utf8')).toBe('');
    expect(fs.statSync(path.join(dir, '0')).mode & 0o7777).toBe(0o644);
  });

  test('no files and no bind without here-documents', async () => {
    expect(await heredocsBind(work, undefined)).toBeUndefined();
    expect(await heredocsBind(work, [])).toBeUndefined();
    expect(fs.existsSync(path.join(work, 'heredocs'))).toBe(false);
  });
});
