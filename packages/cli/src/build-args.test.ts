import { InvalidArgumentError } from '@strata/oci';
import { parseBuildArgs } from './build-args';

test('NAME=VALUE sets a value; the first = splits, so a value may hold more', () => {
  expect(parseBuildArgs(['A=1', 'B=x=y', 'C='], {})).toEqual({ A: '1', B: 'x=y', C: '' });
});

test('a bare NAME takes its value from the environment, as docker does', () => {
  expect(parseBuildArgs(['RELEASE'], { RELEASE: '3.1' })).toEqual({ RELEASE: '3.1' });
});

test('a bare NAME the environment lacks, or an empty name, is refused', () => {
  expect(() => parseBuildArgs(['RELEASE'], {})).toThrow(InvalidArgumentError);
  expect(() => parseBuildArgs(['=1'], {})).toThrow(InvalidArgumentError);
});
