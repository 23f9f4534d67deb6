import { ociPlatform } from './architecture';

test('OCI platforms of Debian architectures', () => {
  expect(ociPlatform('armhf')).toEqual({ architecture: 'arm', variant: 'v7' });
});
