import { InvalidArgumentError } from '@strata/oci';
import {
  AuthConfigOptions,
  SavedCredentials,
  removeCredentials,
  saveCredentials,
} from './auth-config';
import { Transport, TransportOptions } from './transport';

/**
 * Check `username`/`password` against the registry (and its token service), then save them the
 * way `docker login` does. Nothing is written when the registry refuses them.
 */
export async function login(
  registry: string,
  username: string,
  password: string,
  opts: Omit<TransportOptions, 'registry' | 'credentials'> & AuthConfigOptions = {},
): Promise<SavedCredentials> {
  if (username === '') throw new InvalidArgumentError('login needs a username');
  if (password === '') throw new InvalidArgumentError('login needs a password on stdin');
  const { env, helpers, ...transportOpts } = opts;
  const t = new Transport({ ...transportOpts, registry, credentials: { username, password } });
  try {
    await t.request({ method: 'GET', url: '/v2/', scopes: [], expect: [200], what: 'GET /v2/' });
  } finally {
    t.close();
  }
  return saveCredentials(registry, username, password, {
    ...(env ? { env } : {}),
    ...(helpers ? { helpers } : {}),
  });
}

/** Forget a registry's saved credentials. Resolves to whether there were any. */
export async function logout(registry: string, opts: AuthConfigOptions = {}): Promise<boolean> {
  return removeCredentials(registry, opts);
}
