/**
 * The build secrets a step sees: those a RUN mounts, and apt's auth.conf for the steps that
 * fetch from the apt sources.
 */
import type { Instruction } from './stratafile';
import { BuildStepError } from './stage-keys';

/** The build secret that is apt's auth.conf for the apt steps. */
export const APT_AUTH = 'apt-auth';
/** Where the apt steps see it (apt reads every file of auth.conf.d). */
export const APT_AUTH_TARGET = '/etc/apt/auth.conf.d/strata.conf';

/** A secret as the sandbox mounts it. */
export type StepSecret = { target: string; value: Buffer; mode: number };

/**
 * The secrets a RUN mounts that the build was given (`given`, by id); a required one missing
 * fails the step.
 */
export function runSecrets(
  ins: Extract<Instruction, { kind: 'RUN' }>,
  given: Readonly<Record<string, Buffer>> | undefined,
): StepSecret[] {
  const out: StepSecret[] = [];
  for (const m of ins.mounts) {
    const value = given?.[m.id];
    if (value === undefined) {
      if (m.required)
        throw new BuildStepError(ins.loc, `RUN: the required secret ${m.id} was not given`, {
          hint: `strata build --secret id=${m.id},src=FILE (or env=VARIABLE)`,
        });
      continue;
    }
    out.push({ target: m.target, value, mode: m.mode });
  }
  return out;
}

/**
 * The secrets a step sees: `secrets`, and for a step that fetches from the apt sources
 * (`aptIndex`: INSTALL, UPGRADE, DEBUILD) the build's `apt-auth` as auth.conf, unless a secret
 * of its own is mounted there.
 */
export function withAptAuth(
  secrets: readonly StepSecret[] | undefined,
  aptIndex: boolean,
  given: Readonly<Record<string, Buffer>> | undefined,
): StepSecret[] {
  const out = [...(secrets ?? [])];
  const aptAuth = given?.[APT_AUTH];
  if (aptIndex && aptAuth !== undefined && !out.some((s) => s.target === APT_AUTH_TARGET))
    out.push({ target: APT_AUTH_TARGET, value: aptAuth, mode: 0o600 });
  return out;
}
