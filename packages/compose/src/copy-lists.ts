import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { CopySource } from './copy-sources';
import { ContextIgnore, writeKeptList } from './ignore';
import type { CopyHeredoc } from './stratafile';
import { COPY_HEREDOCS, COPY_LISTS } from './step-command';

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

/**
 * A COPY's here-documents as files in the step's work area `work`, each named by its index
 * (mode 0644, whatever the umask; --chmod and --chown apply in the step), and the bind that shows
 * them to the step at COPY_HEREDOCS; undefined when it has none. The build context is never
 * written.
 */
export async function heredocsBind(
  work: string,
  heredocs: readonly CopyHeredoc[] | undefined,
): Promise<StepBind | undefined> {
  if (heredocs === undefined || heredocs.length === 0) return undefined;
  const dir = path.join(work, 'heredocs');
  await fsp.mkdir(dir, { recursive: true });
  for (const [i, d] of heredocs.entries()) {
    const file = path.join(dir, String(i));
    await fsp.writeFile(file, d.content, { mode: 0o644 });
    await fsp.chmod(file, 0o644);
  }
  return { source: dir, target: COPY_HEREDOCS.slice('/run/strata/'.length), readOnly: true };
}
