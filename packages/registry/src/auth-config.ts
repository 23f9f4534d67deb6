import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidDocumentError } from '@strata/oci';
import { writeFileAtomic } from '@strata/store';
import type { HelperCredentials } from '@strata/tools';

/** Credentials for one registry. Never logged; `redact()` covers them in messages. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token service. */
  identityToken?: string;
  /** A bearer token to send as-is (docker's `registrytoken`). */
  registryToken?: string;
}

/** The credential-helper calls, injectable for tests. */
export interface CredentialHelpers {
  get(name: string, server: string): Promise<HelperCredentials | undefined>;
  store(name: string, server: string, creds: HelperCredentials): Promise<void>;
  erase(name: string, server: string): Promise<void>;
}

// Loaded on first use: most runs have no helper configured, and the tools package spawns processes.
const tools = () => import('@strata/tools');
export const systemHelpers: CredentialHelpers = {
  get: async (name, server) => (await tools()).credentialHelperGet(name, server),
  store: async (name, server, creds) => (await tools()).credentialHelperStore(name, server, creds),
  erase: async (name, server) => (await tools()).credentialHelperErase(name, server),
};

export interface AuthConfigOptions {
  env?: NodeJS.ProcessEnv;
  helpers?: CredentialHelpers;
}

/** The subset of docker's config.json that Strata reads and writes; other keys are kept. */
interface DockerConfig {
  auths?: Record<string, { auth?: string; identitytoken?: string; registrytoken?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** Reduce an `auths` key (`https://host/v1/`, `host`, …) to a registry host[:port]. */
export function normalizeServer(key: string): string {
  let s = key.trim().replace(/^[a-z]+:\/\//i, '');
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  s = s.toLowerCase();
  return DOCKER_HUB_HOSTS.has(s) ? 'docker.io' : s;
}

/** The server string docker uses for a registry in config.json and credential helpers. */
export function serverKey(registry: string): string {
  return normalizeServer(registry) === 'docker.io' ? DOCKER_HUB_KEY : registry.toLowerCase();
}

function dockerConfigPath(env: NodeJS.ProcessEnv): string {
  const dir = env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker');
  return path.join(dir, 'config.json');
}

/** Auth files in lookup order: `$REGISTRY_AUTH_FILE`, then `$DOCKER_CONFIG` or `~/.docker`. */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  files.push(dockerConfigPath(env));
  return files;
}

/** The file `strata login` writes: `$REGISTRY_AUTH_FILE` when set, else docker's config.json. */
export function authFileForWrite(env: NodeJS.ProcessEnv = process.env): string {
  return env.REGISTRY_AUTH_FILE || dockerConfigPath(env);
}

async function readConfig(file: string): Promise<DockerConfig | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const doc = JSON.parse(text) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
      throw new Error('not an object');
    return doc as DockerConfig;
  } catch (e) {
    // Never echo the file: it holds secrets.
    throw new InvalidDocumentError(`auth file ${file}`, [
      e instanceof SyntaxError ? 'not valid JSON' : (e as Error).message,
    ]);
  }
}

function findAuthEntry(
  cfg: DockerConfig,
  host: string,
): [string, NonNullable<DockerConfig['auths']>[string]] | undefined {
  for (const [k, v] of Object.entries(cfg.auths ?? {})) {
    if (normalizeServer(k) === host && v && typeof v === 'object') return [k, v];
  }
  return undefined;
}

function helperFor(cfg: DockerConfig, host: string): string | undefined {
  for (const [k, v] of Object.entries(cfg.credHelpers ?? {})) {
    if (normalizeServer(k) === host && typeof v === 'string' && v) return v;
  }
  return typeof cfg.credsStore === 'string' && cfg.credsStore ? cfg.credsStore : undefined;
}

function fromHelper(c: HelperCredentials): Credentials {
  return c.username === '<token>'
    ? { identityToken: c.secret }
    : { username: c.username, password: c.secret };
}

function decodeAuth(
  entry: NonNullable<DockerConfig['auths']>[string],
  file: string,
): Credentials | undefined {
  const creds: Credentials = {};
  // Other tools write this file too: a field of another type is refused, not passed on.
  for (const k of ['auth', 'identitytoken', 'registrytoken'] as const) {
    if (entry[k] !== undefined && entry[k] !== null && typeof entry[k] !== 'string') {
      throw new InvalidDocumentError(`auth file ${file}`, [`an "${k}" entry is not a string`]);
    }
  }
  if (entry.auth) {
    const plain = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = plain.indexOf(':');
    if (colon < 0)
      throw new InvalidDocumentError(`auth file ${file}`, [
        'an "auth" entry is not base64 of user:password',
      ]);
    creds.username = plain.slice(0, colon);
    creds.password = plain.slice(colon + 1);
  }
  if (entry.identitytoken) creds.identityToken = entry.identitytoken;
  if (entry.registrytoken) creds.registryToken = entry.registrytoken;
  return Object.keys(creds).length > 0 ? creds : undefined;
}

/**
 * Credentials for a registry from the auth files: a per-registry `credHelpers` entry, then an
 * `auths` entry, then the `credsStore` helper. Undefined means anonymous.
 */
export async function resolveCredentials(
  registry: string,
  opts: AuthConfigOptions = {},
): Promise<Credentials | undefined> {
  const env = opts.env ?? process.env;
  const helpers = opts.helpers ?? systemHelpers;
  const host = normalizeServer(registry);
  for (const file of authFiles(env)) {
    const cfg = await readConfig(file);
    if (!cfg) continue;
    const perRegistry = Object.entries(cfg.credHelpers ?? {}).find(
      ([k]) => normalizeServer(k) === host,
    );
    if (perRegistry && typeof perRegistry[1] === 'string') {
      const c = await helpers.get(perRegistry[1], serverKey(registry));
      if (c) return fromHelper(c);
    }
    const entry = findAuthEntry(cfg, host);
    if (entry) {
      const c = decodeAuth(entry[1], file);
      if (c) return c;
    }
    if (typeof cfg.credsStore === 'string' && cfg.credsStore) {
      const c = await helpers.get(cfg.credsStore, serverKey(registry));
      if (c) return fromHelper(c);
    }
  }
  return undefined;
}

/** The file that login and logout change, its config as it stands (if any), and the helpers. */
async function configForWrite(
  opts: AuthConfigOptions,
): Promise<{ file: string; cfg: DockerConfig | undefined; helpers: CredentialHelpers }> {
  const file = authFileForWrite(opts.env ?? process.env);
  return { file, cfg: await readConfig(file), helpers: opts.helpers ?? systemHelpers };
}

/** Write the config back atomically, readable by its owner alone: it holds secrets. */
async function writeConfig(file: string, cfg: DockerConfig): Promise<void> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify(cfg, null, '\t')}\n`, 0o600);
}

/** Where login put the credentials: the file it wrote, and the helper that holds them, if any. */
export interface SavedCredentials {
  file: string;
  /** The credential helper's name (`docker-credential-<helper>`); the file then holds none. */
  helper?: string;
}

/**
 * Save credentials the way `docker login` does: through the configured helper when there is one
 * (leaving an empty `auths` entry), else as a base64 `auth` entry. The file is written
 * atomically with mode 0600.
 */
export async function saveCredentials(
  registry: string,
  username: string,
  password: string,
  opts: AuthConfigOptions = {},
): Promise<SavedCredentials> {
  const { file, cfg: found, helpers } = await configForWrite(opts);
  const cfg: DockerConfig = found ?? {};
  const host = normalizeServer(registry);
  const auths = { ...(cfg.auths ?? {}) };
  const existing = findAuthEntry(cfg, host);
  if (existing) delete auths[existing[0]];
  const helper = helperFor(cfg, host);
  if (helper) {
    await helpers.store(helper, serverKey(registry), { username, secret: password });
    auths[serverKey(registry)] = {};
  } else {
    auths[serverKey(registry)] = {
      auth: Buffer.from(`${username}:${password}`, 'utf8').toString('base64'),
    };
  }
  cfg.auths = auths;
  await writeConfig(file, cfg);
  return helper ? { file, helper } : { file };
}

/** Forget a registry's credentials (helper and `auths`). Resolves to whether anything was removed. */
export async function removeCredentials(
  registry: string,
  opts: AuthConfigOptions = {},
): Promise<boolean> {
  const { file, cfg, helpers } = await configForWrite(opts);
  if (!cfg) return false;
  const host = normalizeServer(registry);
  let removed = false;
  const helper = helperFor(cfg, host);
  if (helper) {
    await helpers.erase(helper, serverKey(registry));
    removed = true;
  }
  const entry = findAuthEntry(cfg, host);
  if (entry && cfg.auths) {
    delete cfg.auths[entry[0]];
    removed = true;
    await writeConfig(file, cfg);
  }
  return removed;
}
