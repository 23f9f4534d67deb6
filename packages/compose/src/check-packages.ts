/** The packages of a checked template that the current apt indices have newer versions of. */

import * as path from 'node:path';
import { Digest, LayerRecord, TemplateMetadata, digestHex, stepLine } from '@strata/oci';
import { Store } from '@strata/store';
import { compareDebianVersions } from '@strata/debian';
import { aptStateDir } from './apt-state';
import { availableVersions } from './apt-versions';
import { StageKeys, StepScope } from './stage-keys';
import type { CheckReason } from './check-reason';
import type { ChainStep } from './check-layers';

export interface NewerPackage {
  name: string;
  architecture: string;
  installed: string;
  available: string;
}

/**
 * The installed packages (`meta.packages`) that the current indices of the apt sources of
 * `scope` have in a newer version: what UPGRADE would take.
 */
export async function newerPackages(
  store: Store,
  keys: StageKeys,
  scope: StepScope,
  meta: TemplateMetadata,
  aptAuth: Buffer | undefined,
): Promise<NewerPackage[]> {
  const src = await keys.sourcesFor(scope);
  // One folder per sources and architecture: apt drops the lists of an architecture it is not
  // asked for, so checks of two platforms sharing one would download them again each time.
  const dir = path.join(
    aptStateDir(store.root),
    'check',
    `${digestHex(src.digest).slice(0, 16)}-${meta.architecture}`,
  );
  // The Release files the keys were computed against: an unchanged mirror is not read again.
  const mirror = await keys.releasesOf(src);
  const versions = await availableVersions(src, meta.architecture, dir, aptAuth, mirror?.releases);
  const newer: NewerPackage[] = [];
  for (const p of meta.packages) {
    const avail = versions.get(`${p.name}:${p.architecture}`);
    if (avail !== undefined && compareDebianVersions(avail, p.version) > 0) {
      newer.push({
        name: p.name,
        architecture: p.architecture,
        installed: p.version,
        available: avail,
      });
    }
  }
  return newer;
}

/**
 * A reason for each newer package, at the step that installed it: the first of `steps` (the
 * `nBase`th layer on) whose layer record lists it added.
 */
export function newerPackageReasons(
  newer: readonly NewerPackage[],
  steps: readonly ChainStep[],
  nBase: number,
  diffIds: readonly Digest[],
  records: readonly LayerRecord[],
): CheckReason[] {
  return newer.map((n) => {
    const step = steps.find(
      (s, i) =>
        nBase + i >= 0 &&
        (records.find((r) => r.diffId === diffIds[nBase + i])?.packagesAdded ?? []).some((a) =>
          a.startsWith(`${n.name}=`),
        ),
    );
    return {
      kind: 'package',
      loc: step?.ins.loc,
      message: `${n.name} ${n.installed} has a newer version ${n.available}${step ? ` (installed by ${stepLine(step.ins.text)})` : ''}`,
    };
  });
}
