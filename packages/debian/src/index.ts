export { aptConf } from './apt-conf';
export type { AuthEntry } from './auth-conf';
export { authorizationFor, parseAuthConf } from './auth-conf';
export type { Authorizer } from './fetch';
export {
  debianArchitecture,
  debianArchitectureFor,
  debianArchitectureOf,
  linuxPlatform,
  ociPlatform,
} from './architecture';
export { parseDeb822 } from './deb822';
export { essentialAmong, parseDpkgStatus } from './dpkg-status';
export { parseOsRelease } from './os-release';
export { notInstalled } from './package-args';
export { parsePackagesIndex } from './packages-index';
export type { IndexState } from './release';
export { indexState, releaseDate } from './release';
export type { AptSource, AptSources } from './sources';
export { formatSources, hostSources, makeSources, parseSources } from './sources';
export { compareDebianVersions } from './version';
export type { ReleaseEntry, RepoPackage } from './flat-repo';
export { flatRelease, packagesIndex } from './flat-repo';
export type { Dsc, SourceFile, SourcePackage } from './source-index';
export {
  clearsignedText,
  deb822Paragraphs,
  parseChecksums,
  parseDsc,
  releaseChecksums,
  scanSourcesIndex,
  sourcePackageOf,
} from './source-index';
export { openRepoFile, readIndexFile } from './fetch';
