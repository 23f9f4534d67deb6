import { InvalidArgumentError } from '@strata/oci';

/**
 * `--build-arg` values, for build and check alike: check must see the arguments the build saw.
 * A bare NAME takes its value from the environment, as docker's does.
 */
export function parseBuildArgs(
  list: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of list) {
    const eq = a.indexOf('=');
    if (eq <= 0) {
      const v = env[a];
      if (v === undefined) throw new InvalidArgumentError(`--build-arg ${a}: expected NAME=VALUE`);
      out[a] = v;
    } else out[a.slice(0, eq)] = a.slice(eq + 1);
  }
  return out;
}

/**
 * `--build-arg`, for build and check alike. `nargs: 1`: an array option otherwise takes every
 * word after it, so `--build-arg A=1 product:1` swallowed the tag.
 */
export function buildArgOption() {
  return {
    type: 'string' as const,
    array: true as const,
    nargs: 1,
    default: [] as string[],
    describe: 'ARG value, NAME=VALUE (repeatable)',
  };
}
