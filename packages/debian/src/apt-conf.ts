/**
 * The apt configuration a build step runs apt with.
 */
/** apt.conf handed to steps through APT_CONFIG: everything host-provided lives under /run/strata. */
export function aptConf(o: { dpkg?: string } = {}): string {
  return [
    'Dir::Etc::SourceList "/run/strata/sources.list";',
    'Dir::Etc::SourceParts "/run/strata/sources.list.d";',
    'Dir::State::Lists "/run/strata/lists";',
    'Dir::Cache::Archives "/run/strata/archives";',
    // The status cache depends on the rootfs, so it is never kept. The source cache spares each
    // apt run of a step after the first parsing the indices again (about 1 s for bookworm main);
    // it lives as long as the step, as apt trusts a cache it finds (see AptState).
    'Dir::Cache::pkgcache "";',
    'Dir::Cache::srcpkgcache "/run/strata/cache/srcpkgcache.bin";',
    'APT::Sandbox::User "root";',
    'APT::Install-Recommends "false";',
    'Acquire::Languages "none";',
    // No fsync per unpacked file: the step's tree is scratch until its layer blob is committed.
    'Dpkg::Options { "--force-confdef"; "--force-confold"; "--force-unsafe-io"; };',
    'Dpkg::Use-Pty "false";',
    ...(o.dpkg !== undefined ? [`Dir::Bin::dpkg "${o.dpkg}";`] : []),
    '',
  ].join('\n');
}
