import type { Descriptor, ImageIndex } from './types';
import { Annotations, isImageMediaType, isIndexMediaType } from './media-types';
import { InvalidArgumentError, NotFoundError } from './errors';
import { formatPlatform, normalizePlatform, platformsOf } from './platform';

/**
 * The images a Strata bundle (an OCI index) can hold. Each manifest of a bundle carries its role
 * in the one role annotation, {@link Annotations.role} (`io.strata.role`).
 */
export type Role = 'rootfs' | 'buildchroot';
export const ROLES: readonly Role[] = ['rootfs', 'buildchroot'];

/** The platform an image is asked for; `variant` only counts when given. */
export interface PlatformSelector {
  architecture: string;
  os: string;
  variant?: string;
}

/** Which manifest of an index is wanted. The role defaults to `rootfs`. */
export interface Selector {
  role?: Role;
  platform?: PlatformSelector;
}

export type Selection =
  | { ok: true; descriptor: Descriptor }
  | { ok: false; reason: 'none' | 'ambiguous'; candidates: Descriptor[] };

/**
 * Whether a manifest descriptor is for `platform`. A descriptor that names no platform matches
 * any: Strata's own bundles have carried none, and their config says what they are built for.
 */
export function matchesPlatform(d: Descriptor, platform?: PlatformSelector): boolean {
  if (platform === undefined || d.platform === undefined) return true;
  return platformSatisfies(d.platform, platform);
}

/**
 * Whether an image of platform `have` is one of `want`: os and architecture, and the variant if
 * given, both as docker spells them (an `arm` image without a variant is arm/v7).
 */
export function platformSatisfies(have: PlatformSelector, want: PlatformSelector): boolean {
  const h = normalizePlatform(have);
  const w = normalizePlatform(want);
  if (h.architecture !== w.architecture || h.os !== w.os) return false;
  return w.variant === undefined || h.variant === w.variant;
}

/** The role a manifest descriptor is annotated with, if any. */
export function roleOf(d: Descriptor): string | undefined {
  return d.annotations?.[Annotations.role];
}

/**
 * Select one image manifest from an index: the one rule every command resolves a role by.
 *
 * 1. Candidates are the image manifests of the index (not nested indexes or artifacts) that
 *    match the platform, when one is asked for.
 * 2. The candidate annotated with the role wins.
 * 3. For `rootfs` only, when no candidate carries that annotation, a candidate with no role
 *    annotation at all stands in, but only when it is the only one: with two unannotated images
 *    (a multi-platform index asked for no platform, say) there is no telling which is meant.
 *
 * Two candidates for one answer are `ambiguous`, never settled by their order in the index.
 */
export function selectManifest(index: ImageIndex, sel: Selector = {}): Selection {
  const role = sel.role ?? 'rootfs';
  const candidates = index.manifests.filter(
    (d) => isImageMediaType(d.mediaType) && matchesPlatform(d, sel.platform),
  );
  const pick = (ds: Descriptor[]): Selection | undefined => {
    if (ds.length === 1) return { ok: true, descriptor: ds[0] as Descriptor };
    if (ds.length > 1) return { ok: false, reason: 'ambiguous', candidates: ds };
    return undefined;
  };
  const hit = pick(candidates.filter((d) => roleOf(d) === role));
  if (hit) return hit;
  if (role === 'rootfs') {
    const plain = pick(candidates.filter((d) => roleOf(d) === undefined));
    if (plain) return plain;
  }
  return { ok: false, reason: 'none', candidates };
}

function describe(d: Descriptor): string {
  const p = d.platform ? ` ${formatPlatform(d.platform)}` : '';
  return `${roleOf(d) ?? '(no role)'}${p}`;
}

function platformText(p?: PlatformSelector): string {
  return p === undefined ? '' : ` for ${formatPlatform(p)}`;
}

/**
 * {@link selectManifest}, or a typed error saying why not: NotFoundError when nothing matches,
 * InvalidArgumentError when more than one does. `what` names the index in the message.
 */
export function requireManifest(index: ImageIndex, sel: Selector, what: string): Descriptor {
  const role = sel.role ?? 'rootfs';
  const s = selectManifest(index, sel);
  if (s.ok) return s.descriptor;
  const platforms = platformsOf(index).map(formatPlatform);
  if (s.reason === 'ambiguous') {
    throw new InvalidArgumentError(
      `${what} holds ${s.candidates.length} ${role} images${platformText(sel.platform)} (${s.candidates.map(describe).join(', ')})`,
      { hint: 'name the platform to use, e.g. --platform ' + (platforms[0] ?? 'linux/amd64') },
    );
  }
  // A platform that is not there: say which ones are, which is what the user can pick from.
  if (sel.platform !== undefined && !s.candidates.length && platforms.length > 0) {
    throw new NotFoundError(
      `${what} has no image${platformText(sel.platform)} (its platforms: ${platforms.join(', ')})`,
    );
  }
  const have = index.manifests.map(describe);
  throw new NotFoundError(
    `${what} holds no ${role} image${platformText(sel.platform)} (it has: ${have.join(', ') || 'nothing'})`,
    {
      hint:
        role === 'buildchroot'
          ? 'make a bundle with `strata bundle <tag> --rootfs … --buildchroot …`'
          : undefined,
    },
  );
}

/**
 * The image manifest `desc` stands for under `sel`: itself when it names an image (only as a
 * rootfs, and only when its platform matches), or the one {@link selectManifest} picks from the
 * index it names. `readIndex` reads that index.
 */
export async function resolveManifest(
  desc: Descriptor,
  sel: Selector,
  readIndex: (d: Descriptor) => Promise<ImageIndex>,
  what: string,
): Promise<Descriptor> {
  if (isIndexMediaType(desc.mediaType)) return requireManifest(await readIndex(desc), sel, what);
  const role = sel.role ?? 'rootfs';
  if (role !== 'rootfs') {
    throw new NotFoundError(`${what} is a single image, not a bundle with a ${role} image`);
  }
  if (desc.platform !== undefined && sel.platform !== undefined) {
    requirePlatform(desc.platform, sel.platform, what);
  }
  return desc;
}

/**
 * That a single image of platform `have` is one of `want`, or a NotFoundError in the words
 * build uses for a FROM of another platform.
 */
export function requirePlatform(
  have: PlatformSelector,
  want: PlatformSelector,
  what: string,
): void {
  if (platformSatisfies(have, want)) return;
  throw new NotFoundError(
    `${what} is an image for ${formatPlatform(have)}, not for ${formatPlatform(want)}`,
  );
}
