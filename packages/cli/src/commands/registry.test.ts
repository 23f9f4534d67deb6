import { NotFoundError } from '@strata/oci';
import { transportOptions } from './registry';

test('a --ca-cert file that is not there is NOT_FOUND naming the option, not an ENOENT', async () => {
  const r = transportOptions({ caCert: 'nope.pem', insecure: false }, '127.0.0.1:5830');
  await expect(r).rejects.toBeInstanceOf(NotFoundError);
  await expect(r).rejects.toThrow(/^--ca-cert nope\.pem: no such file$/);
});
