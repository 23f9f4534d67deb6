import type { Descriptor, ImageConfig, ImageIndex } from './types';
import { isImageMediaType } from './media-types';
import { InvalidArgumentError } from './errors';
import type { PlatformSelector } from './select';

const PART = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Parse a platform in docker's syntax, `os/arch[/variant]` (`linux/arm64`, `linux/arm/v7`,
 * `linux/amd64`): the one parser of platform strings. A variant is kept only when given, so
 * `linux/arm64` matches an arm64 image of any variant (see matchesPlatform).
 */
export function parsePlatform(text: string): PlatformSelector {
  const parts = text.trim().toLowerCase().split('/');
  if (parts.length < 2 || parts.length > 3 || !parts.every((p) => PART.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(text)}`, {
      hint: 'write os/arch[/variant], e.g. linux/amd64, linux/arm64 or linux/arm/v7',
    });
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** A comma-separated list of platforms (`linux/amd64,linux/arm64`), each parsed once, in order. */
export function parsePlatforms(text: string): PlatformSelector[] {
  const out: PlatformSelector[] = [];
  for (const item of text.split(',')) {
    if (item.trim() === '') continue;
    const p = parsePlatform(item);
    if (!out.some((q) => formatPlatform(q) === formatPlatform(p))) out.push(p);
  }
  if (out.length === 0) throw new InvalidArgumentError('--platform names no platform');
  return out;
}

/** `os/arch[/variant]`. */
export function formatPlatform(p: { os: string; architecture: string; variant?: string }): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * The distinct platforms of the image manifests of an index, in index order: what a
 * multi-platform template offers. Manifests that name no platform are left out.
 */
export function platformsOf(index: ImageIndex): PlatformSelector[] {
  const seen = new Map<string, PlatformSelector>();
  for (const d of index.manifests) {
    if (!isImageMediaType(d.mediaType) || d.platform === undefined) continue;
    const p: PlatformSelector = { os: d.platform.os, architecture: d.platform.architecture };
    if (d.platform.variant !== undefined) p.variant = d.platform.variant;
    seen.set(formatPlatform(p), p);
  }
  return [...seen.values()];
}

/** The platform an image config names (its `os`, `architecture` and `variant`). */
export function configPlatform(config: ImageConfig): PlatformSelector {
  const p: PlatformSelector = { os: config.os, architecture: config.architecture };
  if (config.variant !== undefined) p.variant = config.variant;
  return p;
}

/** Whether `index` holds images for more than one platform. */
export function isMultiPlatform(index: ImageIndex): boolean {
  return platformsOf(index).length > 1;
}

/** The platform of a descriptor as text, or undefined. */
export function platformText(d: Descriptor): string | undefined {
  return d.platform ? formatPlatform(d.platform) : undefined;
}
