/**
 * Fuzzing of docker's `config.json` (and `$REGISTRY_AUTH_FILE`) as Strata reads and rewrites
 * it: resolveCredentials (every pull and push), saveCredentials (login) and removeCredentials
 * (logout). Other tools write that file too, so any JSON may be in it. Each must return or throw
 * a StrataError; what resolveCredentials returns is strings; after a login the same registry
 * resolves to the credentials saved.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import {
  FUZZ_LONG,
  FUZZ_TIMEOUT_MS,
  fuzzParams,
  jsonish,
  mutatedText,
  parsesOrThrowsTypedAsync,
} from '@strata/oci/testing';
import {
  CredentialHelpers,
  removeCredentials,
  resolveCredentials,
  saveCredentials,
} from './auth-config';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const REGISTRY = 'reg.example:5000';

const valid = {
  auths: {
    'https://reg.example:5000/v1/': { auth: b64('user:pass') },
    'docker.io': { auth: b64('u:p'), identitytoken: 'refresh' },
    other: { registrytoken: 'tok' },
  },
  credHelpers: { 'reg.example:5000': 'secretservice', 'x.example': 'pass' },
  credsStore: 'desktop',
  HttpHeaders: { 'User-Agent': 'docker' },
};

const KEYS = [
  'auths',
  'auth',
  'identitytoken',
  'registrytoken',
  'credHelpers',
  'credsStore',
  'username',
  'password',
  'reg.example:5000',
  'https://reg.example:5000/v1/',
  'docker.io',
];
const LEAVES = [b64('user:pass'), b64('nocolon'), 'not base64!', 'desktop', '', 'reg.example:5000'];

/** Splices a random value into a copy of the valid config at a random path. */
const spliced = fc
  .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), jsonish(KEYS, LEAVES))
  .map(([p, v]) => {
    const copy = JSON.parse(JSON.stringify(valid)) as Record<string, unknown>;
    let node = copy;
    for (let i = 0; i < p.length; i++) {
      const keys = Object.keys(node);
      const k = keys[(p[i] as number) % keys.length] as string;
      const child = node[k];
      if (i === p.length - 1 || child === null || typeof child !== 'object') {
        node[k] = v;
        break;
      }
      node = child as Record<string, unknown>;
    }
    return JSON.stringify(copy);
  });

const configText = fc.oneof(
  { arbitrary: spliced, weight: 4 },
  {
    arbitrary: mutatedText(fc.constant(JSON.stringify(valid, null, '\t')), [
      '{',
      '}',
      '"',
      ',',
      ':',
      'null',
      '[]',
    ]),
    weight: 2,
  },
  { arbitrary: jsonish(KEYS, LEAVES).map((d) => JSON.stringify(d) ?? ''), weight: 2 },
);

/** A helper set that knows no credentials and records nothing: no helper program runs. */
const helpers: CredentialHelpers = {
  get: async () => undefined,
  store: async () => undefined,
  erase: async () => undefined,
};

describe('docker config.json under fuzzing', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-auth-fuzz-'));
  });
  afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

  const registries = fc.constantFrom(REGISTRY, 'docker.io', 'other', 'x.example');
  const envOf = (file: string) => ({
    REGISTRY_AUTH_FILE: file,
    HOME: dir,
    DOCKER_CONFIG: path.join(dir, 'none'),
  });

  test(
    'credentials are read as strings, or a typed error says why not',
    async () => {
      const file = path.join(dir, 'read.json');
      const env = envOf(file);
      let read = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(configText, registries, async (text, registry) => {
          await fsp.writeFile(file, text);
          // A bound for a case that reads a file, on a loaded machine.
          const r = await parsesOrThrowsTypedAsync(
            () => resolveCredentials(registry, { env, helpers }),
            5_000,
          );
          if (!r.ok) refused++;
          else if (r.value !== undefined) {
            read++;
            for (const v of Object.values(r.value)) expect(typeof v).toBe('string');
          }
        }),
        fuzzParams('docker config.json'),
      );
      expect(read).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );

  // Each login and logout writes the file (fsync, rename): fewer cases, a longer bound.
  test(
    'login and logout rewrite any config, or a typed error says why not',
    async () => {
      const file = path.join(dir, 'write.json');
      const env = envOf(file);
      await fc.assert(
        fc.asyncProperty(configText, registries, async (text, registry) => {
          await fsp.writeFile(file, text);
          const saved = await parsesOrThrowsTypedAsync(
            () => saveCredentials(registry, 'fuzz', 'p:w', { env, helpers }),
            5_000,
          );
          if (saved.ok) {
            // Unless a helper took them, the file now gives them back.
            const again = await resolveCredentials(registry, { env, helpers });
            if (again?.username !== undefined) {
              expect(again).toMatchObject({ username: 'fuzz', password: 'p:w' });
            }
          }
          await parsesOrThrowsTypedAsync(
            () => removeCredentials(registry, { env, helpers }),
            5_000,
          );
        }),
        fuzzParams('docker config.json (login, logout)', FUZZ_LONG ? 10_000 : 300),
      );
    },
    FUZZ_TIMEOUT_MS,
  );
});
