import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { CopySource } from './copy-sources';
import { ContextIgnore, writeKeptList } from './ignore';
import { COPY_LISTS } from './step-command';

/** A directory of the host that a step sees under /run/strata (`target` relative to it). */
export interface StepBind {
  source: string;
  target: string;
  readOnly?: boolean;
}

/**
 * For each source of `copy` that `ignore` leaves something out of (`filtered`), the list of what
 * it keeps in the context `context`, written as the context is walked into `<work>/copy-lists/<i>`
 * (`i` its index in `copy`), and the bind that shows them to the step at COPY_LISTS, where
 * `strata_tar` reads them; undefined when no source is filtered.
 */
export async function copyListsBind(
  work: string,
  context: string,
  copy: readonly CopySource[] | undefined,
  ignore: ContextIgnore | undefined,
): Promise<StepBind | undefined> {
  if (ignore === undefined || !copy?.some((c) => c.filtered)) return undefined;
  const dir = path.join(work, 'copy-lists');
  await fsp.mkdir(dir, { recursive: true });
  for (const [i, c] of copy.entries())
    if (c.filtered) await writeKeptList(path.join(dir, String(i)), context, c.path, ignore);
  return { source: dir, target: COPY_LISTS.slice('/run/strata/'.length), readOnly: true };
}
