import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@strata/oci';
import { parseSecrets } from './secrets';

test('reads a secret from a file and from a variable', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'strata-secrets-'));
  const file = path.join(dir, 'tok');
  writeFileSync(file, 'from-file\n');
  const got = parseSecrets(
    [`id=a,src=${file}`, 'id=b,env=MY_TOKEN', `type=file,id=c,source=${file}`],
    {
      MY_TOKEN: 'from-env',
    },
  );
  expect(Object.keys(got).sort()).toEqual(['a', 'b', 'c']);
  expect(got.a?.toString()).toBe('from-file\n');
  expect(got.b?.toString()).toBe('from-env');
  expect(got.c?.toString()).toBe('from-file\n');
});

test('refuses what it cannot use, without showing a value', () => {
  const env = { SET: 'hidden-value' };
  const cases: Array<[string, string]> = [
    ['src=/x', 'needs id=NAME'],
    ['id=a/b,src=/x', 'needs id=NAME'],
    ['id=a', 'give one of src=FILE and env=VARIABLE'],
    ['id=a,src=/x,env=SET', 'give one of src=FILE and env=VARIABLE'],
    ['id=a,env=UNSET', 'the variable UNSET is not set'],
    ['id=a,type=env,src=/x', 'type=env does not go with that source'],
    ['id=a,mode=0400,src=/x', 'unknown key mode'],
    ['id=a,src', 'expected key=value items'],
  ];
  for (const [spec, text] of cases) {
    expect(() => parseSecrets([spec], env)).toThrow(InvalidArgumentError);
    expect(() => parseSecrets([spec], env)).toThrow(text);
  }
  expect(() => parseSecrets(['id=a,env=SET', 'id=a,env=SET'], env)).toThrow('given twice');
});

test('a src file that is not there is NOT_FOUND, naming the option as given', () => {
  expect(() => parseSecrets(['id=a,src=/nonexistent/file'])).toThrow(NotFoundError);
  expect(() => parseSecrets(['id=a,src=/nonexistent/file'])).toThrow(
    '--secret id=a,src=/nonexistent/file: no such file',
  );
});

test('a src that is a folder is one line saying so, as for any input file', () => {
  expect(() => parseSecrets(['id=a,src=/tmp'])).toThrow(
    '--secret id=a,src=/tmp: is a folder, not a file',
  );
});
