import { DebuildRecord, Digest, StrataError, stepLine } from '@strata/oci';
import { hostDebianArchitecture } from '@strata/tools';
import { StageKeys, StepScope } from './stage-keys';
import { DebuildInstruction } from './stratafile';
import { debuildKey } from './debuild-key';
import type { CheckReason } from './check-reason';

/**
 * Recompute the key of every source the chain's DEBUILD lines build, on the buildchroot and with
 * the build's own packages the template recorded for it: a changed source tree or a moved apt
 * index makes the template stale.
 */
export async function checkDebuilds(
  keys: StageKeys,
  context: string,
  debuilds: ReadonlyArray<{ ins: DebuildInstruction; scope: StepScope }>,
  records: readonly DebuildRecord[],
): Promise<CheckReason[]> {
  const reasons: CheckReason[] = [];
  let n = 0;
  for (const { ins, scope } of debuilds) {
    for (const source of ins.sources) {
      const rec = records[n++];
      if (rec?.source !== source) {
        reasons.push({
          kind: 'structure',
          loc: ins.loc,
          message: `${stepLine(ins.text)}: the template records no build of ${source} here`,
        });
        continue;
      }
      let key: Digest;
      try {
        key = await debuildKey(keys, context, {
          scope,
          ins,
          source,
          buildchroot: rec.buildchroot,
          target: ins.arch ?? scope.debArch ?? hostDebianArchitecture(),
          inputs: rec.inputs,
        });
      } catch (e) {
        if (!(e instanceof StrataError)) throw e;
        reasons.push({
          kind: 'step',
          loc: ins.loc,
          message: `${stepLine(ins.text)}: ${e.message}`,
        });
        continue;
      }
      if (key !== rec.cacheKey)
        reasons.push({
          kind: 'step',
          loc: ins.loc,
          message: `${stepLine(ins.text)}: ${source} changed: its source, an ARG/ENV value, or the apt indices its Build-Depends resolve from changed since the build`,
        });
    }
  }
  if (n < records.length)
    reasons.push({
      kind: 'structure',
      message: `the template was built with ${records.length} DEBUILD sources, the Stratafile has ${n}`,
    });
  return reasons;
}
