export { build } from './engine';
export type { BuildEvent, BuildOptions, BuildResult, StepReport } from './engine';
export { BuildStepError } from './stage-keys';
export { checkTemplate, formatReason } from './check';
export { RegistryCache } from './remote-cache';
export { collectGarbage } from './gc';
export { diskUsageReport } from './df';
export type { RepoContents } from './local-repo';
export { writeDebsRepo } from './local-repo';
export { attachedDebs, exportDebs } from './export-debs';
export type { AttachedDeb, ExportedDebs } from './export-debs';
export { sourcesOf, writeSources } from './source-bundle';
export type {
  BundledSource,
  CopiedLayer,
  MissingSource,
  SourceIndex,
  SourcesOptions,
  SourcesResult,
  SourcesStats,
} from './source-bundle';
