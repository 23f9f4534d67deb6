export { DEFAULT_EXCLUSIONS, globToRegExp } from './exclusions';
export type { ExclusionRule } from './exclusions';
export { readRootfsFacts } from './facts';
export { openRootfsSource } from './rootfs-input';
export { createTemplate, isoDate } from './create';
export { archiveSource, loadTemplateSet, summarizeSet } from './inspect';
export type { ArtifactSummary, TemplateSource } from './inspect';
