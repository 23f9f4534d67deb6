import type { Descriptor, ImageConfig, ImageIndex } from './types';
import { isImageMediaType } from './media-types';
import { InvalidArgumentError } from './errors';
import type { PlatformSelector } from './select';

const PART = /^[a-z0-9][a-z0-9._-]*$/;

/**
 * Parse a platform in docker's syntax, `[os/]arch[/variant]` (`linux/arm64`, `linux/arm/v7`,
 * `amd64`): the one parser of platform strings. It normalises as docker does (containerd's
 * platforms.Normalize), so that every spelling of one platform selects, dedupes and builds the
 * same: see {@link normalizePlatform}. A variant is kept only when given (or implied, as `arm`'s
 * v7), so `linux/arm64` matches an arm64 image of any variant (see matchesPlatform).
 */
export function parsePlatform(text: string): PlatformSelector {
  const parts = text.trim().toLowerCase().split('/');
  // A bare architecture is of linux, the only os Strata builds for (docker takes its host's).
  const bare = parts.length === 1 && !OSES.has(parts[0] as string);
  if ((parts.length < 2 && !bare) || parts.length > 3 || !parts.every((p) => PART.test(p))) {
    throw new InvalidArgumentError(`invalid platform ${JSON.stringify(text)}`, {
      hint: 'write [os/]arch[/variant], e.g. linux/amd64, linux/arm64 or linux/arm/v7',
    });
  }
  const [os, architecture, variant] = (bare ? ['linux', ...parts] : parts) as [
    string,
    string,
    string | undefined,
  ];
  return normalizePlatform(
    variant === undefined ? { os, architecture } : { os, architecture, variant },
  );
}

/** Operating systems a one-part platform cannot be: `linux` alone names no architecture. */
const OSES = new Set(['linux', 'windows', 'darwin', 'freebsd']);

/**
 * A platform in docker's canonical spelling: `x86_64`/`x86-64` are amd64 (v1 is no variant),
 * `aarch64` is arm64 (v8 is no variant: `linux/arm64` and `linux/arm64/v8` are one platform),
 * `armhf`/`armv7l` are arm/v7, `armel` arm/v5, `arm` is arm/v7 and a numeric arm variant gets
 * its `v`, `i386` is 386.
 */
export function normalizePlatform(p: PlatformSelector): PlatformSelector {
  let { architecture, variant } = p;
  switch (architecture) {
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      architecture = 'amd64';
      if (variant === 'v1') variant = undefined;
      break;
    case 'aarch64':
    case 'arm64':
      architecture = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = undefined;
      break;
    case 'armhf':
    case 'armv7l':
      architecture = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      // Debian's armel is ARMv5 (Strata's armel images say arm/v5), where docker says v6.
      architecture = 'arm';
      variant = 'v5';
      break;
    case 'arm':
      if (variant === undefined || variant === '7') variant = 'v7';
      else if (variant === '5' || variant === '6' || variant === '8') variant = `v${variant}`;
      break;
    case 'i386':
      architecture = '386';
      break;
  }
  return variant === undefined ? { os: p.os, architecture } : { os: p.os, architecture, variant };
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
