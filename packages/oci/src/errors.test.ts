import { NoSpaceError, StrataError, isNoSpace, noSpaceAt } from './errors';

const errno = (code: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: write`), { code, syscall: 'write' });

describe('noSpaceAt', () => {
  test('ENOSPC and EDQUOT become a NoSpaceError naming the path and what was needed', () => {
    for (const code of ['ENOSPC', 'EDQUOT']) {
      const e = noSpaceAt(errno(code), '/store/.strata/ingest', 1234);
      expect(e).toBeInstanceOf(NoSpaceError);
      expect(e).toMatchObject({ code: 'NO_SPACE', path: '/store/.strata/ingest', needed: 1234 });
      expect((e as Error).message).toBe(
        'no space left on device: /store/.strata/ingest (1234 bytes needed)',
      );
    }
  });

  test('a full disk is found through the errors that wrap it', () => {
    const wrapped = new StrataError('UNAVAILABLE', 'unpack: "usr/bin/x": ENOSPC', {
      cause: errno('ENOSPC'),
    });
    const e = noSpaceAt(wrapped, '/snapshots/.tmp-unpack');
    expect(e).toBeInstanceOf(NoSpaceError);
    expect((e as Error).message).toBe('no space left on device: /snapshots/.tmp-unpack');
    expect((e as Error).cause).toBe(wrapped);
  });

  test('a NoSpaceError made nearer the write is kept', () => {
    const inner = new NoSpaceError('/store/.strata/ingest', 10);
    expect(noSpaceAt(new Error('outer', { cause: inner }), '/store')).toBe(inner);
    expect(noSpaceAt(inner, '/elsewhere')).toBe(inner);
  });

  test('any other error passes through unchanged', () => {
    const other = errno('EIO');
    expect(noSpaceAt(other, '/store')).toBe(other);
    expect(noSpaceAt('text', '/store')).toBe('text');
  });

  test('isNoSpace tells a full disk from other failures', () => {
    expect(isNoSpace(errno('ENOSPC'))).toBe(true);
    expect(isNoSpace(new Error('wrapped', { cause: errno('EDQUOT') }))).toBe(true);
    expect(isNoSpace(new NoSpaceError('/store'))).toBe(true);
    expect(isNoSpace(errno('EIO'))).toBe(false);
    expect(isNoSpace(undefined)).toBe(false);
  });
});
