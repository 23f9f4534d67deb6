import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '@strata/oci';
import { inputFileError } from './output';

/** The id of the build secret that is apt's auth.conf, for the apt steps and `strata check`. */
export const APT_AUTH_SECRET = 'apt-auth';

/** The yargs option `--secret`, as build and check take it. */
export function secretOption(describe: string): {
  type: 'string';
  array: true;
  nargs: 1;
  default: string[];
  describe: string;
} {
  return { type: 'string', array: true, nargs: 1, default: [], describe };
}

/**
 * `strata build --secret id=NAME,src=FILE` or `--secret id=NAME,env=VARIABLE` (repeatable, as
 * docker build's): each secret's bytes by id. Only where a value comes from is ever shown.
 */
export function parseSecrets(
  list: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const spec of list) {
    const fields = new Map<string, string>();
    for (const item of spec.split(',')) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new InvalidArgumentError(`--secret ${spec}: expected key=value items`);
      let key = item.slice(0, eq);
      if (key === 'source') key = 'src';
      if (!['id', 'src', 'env', 'type'].includes(key))
        throw new InvalidArgumentError(
          `--secret ${spec}: unknown key ${key} (id, src or env, type)`,
        );
      if (fields.has(key)) throw new InvalidArgumentError(`--secret ${spec}: ${key} given twice`);
      fields.set(key, item.slice(eq + 1));
    }
    const id = fields.get('id');
    if (id === undefined || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id))
      throw new InvalidArgumentError(`--secret ${spec}: needs id=NAME (letters, digits, _ . -)`);
    if (out[id] !== undefined) throw new InvalidArgumentError(`--secret id=${id} given twice`);
    const src = fields.get('src');
    const variable = fields.get('env');
    const type = fields.get('type') ?? (variable !== undefined ? 'env' : 'file');
    if ((src !== undefined) === (variable !== undefined))
      throw new InvalidArgumentError(`--secret id=${id}: give one of src=FILE and env=VARIABLE`);
    if ((type === 'env') !== (variable !== undefined))
      throw new InvalidArgumentError(
        `--secret id=${id}: type=${type} does not go with that source`,
      );
    if (variable !== undefined) {
      const v = env[variable];
      if (v === undefined)
        throw new InvalidArgumentError(`--secret id=${id}: the variable ${variable} is not set`);
      out[id] = Buffer.from(v);
    } else {
      try {
        out[id] = readFileSync(src as string);
      } catch (e) {
        throw inputFileError('--secret', `id=${id},src=${src as string}`, e);
      }
    }
  }
  return out;
}

/** `{ aptAuth }` from `--secret` options, for the commands that read apt repositories. */
export function aptAuthOption(list: readonly string[]): { aptAuth?: Buffer } {
  const aptAuth = parseSecrets(list)[APT_AUTH_SECRET];
  return aptAuth !== undefined ? { aptAuth } : {};
}
