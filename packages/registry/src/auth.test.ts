import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidDocumentError } from '@strata/oci';
import { parseChallenges } from './challenge';
import {
  CredentialHelpers,
  normalizeServer,
  removeCredentials,
  resolveCredentials,
  saveCredentials,
} from './auth-config';

describe('WWW-Authenticate', () => {
  it('parses a bearer challenge with quoted, comma-bearing values', () => {
    const [c] = parseChallenges(
      'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push"',
    );
    expect(c).toEqual({
      scheme: 'bearer',
      params: {
        realm: 'https://auth.example/token',
        service: 'reg.example',
        scope: 'repository:a/b:pull,push',
      },
    });
  });
  it('parses several challenges', () => {
    const cs = parseChallenges([
      'Basic realm="Registry Realm"',
      'Bearer realm="x",error="insufficient_scope"',
    ]);
    expect(cs.map((c) => c.scheme)).toEqual(['basic', 'bearer']);
    expect(cs[1]?.params.error).toBe('insufficient_scope');
  });
});

describe('auth files', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const calls: string[] = [];
  const helpers: CredentialHelpers = {
    get: async (name, server) => {
      calls.push(`get ${name} ${server}`);
      return name === 'good' ? { username: 'helper-user', secret: 'helper-pass' } : undefined;
    },
    store: async (name, server, c) => {
      calls.push(`store ${name} ${server} ${c.username}`);
    },
    erase: async (name, server) => {
      calls.push(`erase ${name} ${server}`);
    },
  };
  beforeEach(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-auth-'));
    env = { HOME: dir, DOCKER_CONFIG: path.join(dir, 'docker') };
    calls.length = 0;
  });
  afterEach(() => fsp.rm(dir, { recursive: true, force: true }));

  const write = async (file: string, doc: unknown): Promise<void> => {
    await fsp.mkdir(path.dirname(file), { recursive: true });
    await fsp.writeFile(file, JSON.stringify(doc));
  };

  it('normalises auths keys', () => {
    expect(normalizeServer('https://reg.example:5000/v1/')).toBe('reg.example:5000');
    expect(normalizeServer('https://index.docker.io/v1/')).toBe('docker.io');
  });

  it('reads base64 auth entries under any key form', async () => {
    await write(path.join(dir, 'docker', 'config.json'), {
      auths: { 'https://reg.example:5000/v1/': { auth: Buffer.from('u:p:w').toString('base64') } },
    });
    expect(await resolveCredentials('reg.example:5000', { env, helpers })).toEqual({
      username: 'u',
      password: 'p:w',
    });
    expect(await resolveCredentials('other.example', { env, helpers })).toBeUndefined();
  });

  it('prefers REGISTRY_AUTH_FILE, then credHelpers, then credsStore', async () => {
    await write(path.join(dir, 'auth.json'), {
      auths: { 'a.example': { auth: Buffer.from('first:1').toString('base64') } },
    });
    await write(path.join(dir, 'docker', 'config.json'), {
      auths: { 'a.example': { auth: Buffer.from('second:2').toString('base64') } },
      credHelpers: { 'b.example': 'good' },
      credsStore: 'good',
    });
    env.REGISTRY_AUTH_FILE = path.join(dir, 'auth.json');
    expect((await resolveCredentials('a.example', { env, helpers }))?.username).toBe('first');
    expect(await resolveCredentials('b.example', { env, helpers })).toEqual({
      username: 'helper-user',
      password: 'helper-pass',
    });
    expect(await resolveCredentials('c.example', { env, helpers })).toEqual({
      username: 'helper-user',
      password: 'helper-pass',
    });
    expect(calls).toEqual(['get good b.example', 'get good c.example']);
  });

  it('saves like docker login: 0600, other keys kept, helper when configured', async () => {
    const file = path.join(dir, 'docker', 'config.json');
    await write(file, { auths: {}, psFormat: 'table' });
    expect(await saveCredentials('reg.example', 'alice', 's3cret', { env, helpers })).toEqual({
      file,
    });
    const doc = JSON.parse(await fsp.readFile(file, 'utf8'));
    expect(doc.psFormat).toBe('table');
    expect(Buffer.from(doc.auths['reg.example'].auth, 'base64').toString()).toBe('alice:s3cret');
    expect((await fsp.stat(file)).mode & 0o777).toBe(0o600);
    expect(await removeCredentials('reg.example', { env, helpers })).toBe(true);
    expect(JSON.parse(await fsp.readFile(file, 'utf8')).auths).toEqual({});

    await write(file, { credsStore: 'good' });
    // Said to be the helper's, not the file's, which holds no secret.
    expect(await saveCredentials('reg.example', 'alice', 's3cret', { env, helpers })).toEqual({
      file,
      helper: 'good',
    });
    expect(calls).toEqual(['store good reg.example alice']);
    expect(JSON.parse(await fsp.readFile(file, 'utf8')).auths).toEqual({ 'reg.example': {} });
  });

  it('never echoes a broken auth file', async () => {
    await fsp.mkdir(path.join(dir, 'docker'), { recursive: true });
    await fsp.writeFile(
      path.join(dir, 'docker', 'config.json'),
      '{"auths": {"x": {"auth": "SECRET"',
    );
    await expect(resolveCredentials('x', { env, helpers })).rejects.toThrow(/not valid JSON/);
    await expect(resolveCredentials('x', { env, helpers })).rejects.not.toThrow(/SECRET/);
  });
});

// Found by fuzzing: a parameter named __proto__ set the params object's prototype (to nothing,
// being a string) instead of being kept.
test('a challenge parameter named __proto__ is kept as a parameter', () => {
  const [c] = parseChallenges('Bearer __proto__="x", realm="https://auth.example/token"');
  expect(Object.entries(c?.params ?? {})).toEqual([
    ['__proto__', 'x'],
    ['realm', 'https://auth.example/token'],
  ]);
});

// Found by fuzzing: an auths entry whose auth (or token) was not a string failed with a
// TypeError from Buffer.from, or passed a number on as a token.
test.each([{ auth: 5 }, { auth: { a: 1 } }, { identitytoken: 1 }, { registrytoken: [] }])(
  'an auths entry %j is refused as an invalid auth file',
  async (entry) => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-auth-'));
    try {
      const file = path.join(dir, 'auth.json');
      await fsp.writeFile(file, JSON.stringify({ auths: { 'reg.example': entry } }));
      await expect(
        resolveCredentials('reg.example', { env: { REGISTRY_AUTH_FILE: file, HOME: dir } }),
      ).rejects.toBeInstanceOf(InvalidDocumentError);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  },
);
