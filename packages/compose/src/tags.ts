import { Annotations, Descriptor } from '@strata/oci';
import type { Store } from '@strata/store';
import type { BuildOptions } from './build-state';

/** The tags a build gives its result: `tag`, then `moreTags`, each once. */
export function tagsOf(opts: Pick<BuildOptions, 'tag' | 'moreTags'>): string[] {
  return [...new Set([...(opts.tag !== undefined ? [opts.tag] : []), ...(opts.moreTags ?? [])])];
}

/** Tag `desc` with each of `tags`; the refs as the store spells them. */
export async function tagAll(
  store: Store,
  tags: readonly string[],
  desc: Descriptor,
): Promise<string[]> {
  const refs: string[] = [];
  for (const t of tags) {
    await store.tag(t, desc);
    const ref = (await store.resolve(t)).annotations?.[Annotations.refName];
    if (ref !== undefined) refs.push(ref);
  }
  return refs;
}
