import { ImageIndex, PlatformSelector, formatPlatform, isMultiPlatform } from '@strata/oci';
import { linuxPlatform } from '@strata/debian';
import { hostDebianArchitecture } from '@strata/tools';

/**
 * Docker's automatic platform ARGs (TARGETPLATFORM, TARGETOS, TARGETARCH, TARGETVARIANT), for a
 * Stratafile that declares them: `FROM acme/base:${TARGETARCH}` builds each platform on its own
 * single-platform base.
 */
export function platformArgs(p: PlatformSelector): Record<string, string> {
  return {
    TARGETPLATFORM: formatPlatform(p),
    TARGETOS: p.os,
    TARGETARCH: p.architecture,
    TARGETVARIANT: p.variant ?? '',
  };
}

/**
 * The platform to take from a base template's index: the one being built; without one, of a
 * multi-platform template the host's (as docker does), and of any other index whatever it holds.
 */
export function basePlatform(
  index: ImageIndex,
  asked: PlatformSelector | undefined,
): PlatformSelector | undefined {
  if (asked) return asked;
  return isMultiPlatform(index) ? linuxPlatform(hostDebianArchitecture()) : undefined;
}
