import {
  ImageIndex,
  PlatformSelector,
  formatPlatform,
  isMultiPlatform,
  normalizePlatform,
} from '@strata/oci';
import { linuxPlatform } from '@strata/debian';
import { hostDebianArchitecture } from '@strata/tools';

/** The host's platform as docker names a build's default one (`linux/arm64`, not `…/v8`). */
export function hostPlatform(): PlatformSelector {
  return normalizePlatform(linuxPlatform(hostDebianArchitecture()));
}

/**
 * Docker's automatic platform ARGs, for a Stratafile that declares them: TARGETPLATFORM,
 * TARGETOS, TARGETARCH and TARGETVARIANT of the platform being built (`target`; without one the
 * host's, as docker defaults it), and BUILDPLATFORM, BUILDOS, BUILDARCH and BUILDVARIANT of the
 * host. `FROM acme/base:${TARGETARCH}` builds each platform on its own single-platform base, and
 * builds without --platform too.
 */
export function platformArgs(
  target: PlatformSelector | undefined,
  host: PlatformSelector = hostPlatform(),
): Record<string, string> {
  const t = target ?? host;
  return {
    TARGETPLATFORM: formatPlatform(t),
    TARGETOS: t.os,
    TARGETARCH: t.architecture,
    TARGETVARIANT: t.variant ?? '',
    BUILDPLATFORM: formatPlatform(host),
    BUILDOS: host.os,
    BUILDARCH: host.architecture,
    BUILDVARIANT: host.variant ?? '',
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
