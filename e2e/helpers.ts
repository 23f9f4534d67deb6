/**
 * End-to-end test harness.
 *
 * These helpers deliberately do NOT import any @strata package: they are the independent oracle
 * the CLI is checked against. Trees are read with lstat/readFileSync and `getfattr`, tarballs are
 * written by hand, and images are read back with skopeo, umoci and GNU tar.
 */
export * from './support/processes';
export * from './support/fixtures';
export * from './support/trees';
export * from './support/layouts';
