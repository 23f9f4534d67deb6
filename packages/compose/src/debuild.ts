/**
 * DEBUILD: Debian source packages built in the stage's buildchroot, natively or cross, into an
 * apt repository local to the build that later steps install from by name.
 */
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  DebianPackage,
  Descriptor,
  Digest,
  StrataError,
  chainId,
  configPlatform,
  digestHex,
} from '@strata/oci';
import { debianArchitectureOf } from '@strata/debian';
import { EmulatorMissingError, hostDebianArchitecture, requireEmulation } from '@strata/tools';
import { DebuildEntry, readDebuildCache, writeDebuildCache } from './cache';
import { storeSourcePackage } from './debuild-source';
import { BuildContext, BuiltLayer, StageState, chainOf, stackOf } from './build-state';
import { BuiltDeb, LocalDebs, builtDeb } from './built-debs';
import type { Snapshots, StackLayer } from './snapshots';
import { BuildStepError } from './stage-keys';
import { buildDependsOf, controlTextOf, debuildKey, debuildTreeInputs } from './debuild-key';
import { STRATA_TAR } from './ignore';
import { copyListsBind } from './copy-lists';
import { APT_UPDATE, COPY_LISTS } from './step-command';
import type { DebuildInstruction } from './stratafile';
import type { StepRunner } from './run-step';
import { failureReason } from './step-output';
import { shellQuote } from './stratafile/shell';

/**
 * Where a store keeps DEBUILD's whole build logs, `debuild-<source>-<12 hex of the key>.log`:
 * gc removes a log with the cache entry of its key.
 */
export function logsDir(storeRoot: string): string {
  return path.join(storeRoot, '.strata', 'logs');
}

/** The shell a DEBUILD runs in the buildchroot, as root (see the phases in `debuildScript`). */
function debuildScript(o: {
  source: string;
  dsc: boolean;
  hostArch: string;
  profiles: string[];
  /**
   * With a `.strataignore`: the tree is copied from the list of what it keeps (when it leaves
   * something in it out), and these upstream tarballs (those it keeps) instead of every one.
   */
  ignored?: { filtered: boolean; origs: string[] };
}): string {
  const q = shellQuote;
  const prof = o.profiles.length ? o.profiles.join(',') : '';
  const aArg = `-a ${q(o.hostArch)}`;
  // apt takes the profiles as a separate word; dpkg-buildpackage wants --build-profiles=.
  const pArg = prof ? ` -P ${q(prof)}` : '';
  return [
    APT_UPDATE,
    'set -e',
    'phase() { printf "%s\\n" "$1" > /run/strata/out/phase; }',
    'mkdir -p /run/strata/lists/partial /run/strata/archives/partial',
    'phase apt',
    `build_arch=$(dpkg --print-architecture)`,
    `if [ "$build_arch" != ${q(o.hostArch)} ]; then dpkg --add-architecture ${q(o.hostArch)}; cross=1; else cross=; fi`,
    'strata_update',
    'phase tools',
    // A cross build also needs the target's C library where dpkg-shlibdeps looks for it.
    `apt-get install -y -q --no-install-recommends build-essential dpkg-dev fakeroot \${cross:+crossbuild-essential-${o.hostArch} libc6-dev:${o.hostArch}}`,
    'phase source',
    'mkdir -p /build',
    // dpkg-source checks each file against the .dsc's checksums (Strata has checked them too).
    o.dsc
      ? `dpkg-source -x /run/strata/context/${q(o.source)} /build/src`
      : o.ignored?.filtered
        ? `${STRATA_TAR}\nmkdir /build/src\nstrata_tar /run/strata/context/${q(o.source)} ${COPY_LISTS}/0 /build/src`
        : `cp -a /run/strata/context/${q(o.source)} /build/src`,
    // A 3.0 (quilt) tree's upstream tarballs lie beside it, where dpkg-source looks for them.
    ...(o.dsc
      ? []
      : [
          o.ignored
            ? o.ignored.origs
                .map(
                  (f) =>
                    `if [ -f /run/strata/context/${q(f)} ]; then cp /run/strata/context/${q(f)} /build/; fi`,
                )
                .join('\n') || 'true'
            : `for f in "$(dirname /run/strata/context/${q(o.source)})"/*.orig.tar.* "$(dirname /run/strata/context/${q(o.source)})"/*.orig-*.tar.*; do if [ -f "$f" ]; then cp "$f" /build/; fi; done`,
          // The source package the .debs are built from, kept with them (a .dsc is kept as it
          // is given). Made from a copy whose dates are all the changelog's: dpkg-source keeps
          // dates older than SOURCE_DATE_EPOCH, which the cache key does not see, so the same
          // tree in another checkout gives the same tarball.
          'phase source-package',
          'SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l /build/src/debian/changelog -STimestamp)',
          'export SOURCE_DATE_EPOCH',
          // The tree is named <source>-<upstream version>, as Debian's tarballs have it.
          'v=$(dpkg-parsechangelog -l /build/src/debian/changelog -SVersion); v=${v#*:}',
          'case $v in *-*) v=${v%-*} ;; esac',
          'tree=$(dpkg-parsechangelog -l /build/src/debian/changelog -SSource)-$v',
          'rm -rf /tmp/strata-source && mkdir -p /tmp/strata-source /run/strata/out/source',
          'cp -a /build/src "/tmp/strata-source/$tree"',
          'for f in /build/*; do if [ -f "$f" ]; then cp "$f" /tmp/strata-source/; fi; done',
          'find /tmp/strata-source/"$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +',
          '(cd /tmp/strata-source && dpkg-source -b "$tree")',
          'for f in /tmp/strata-source/*; do if [ -f "$f" ]; then cp "$f" /run/strata/out/source/; fi; done',
          'rm -rf /tmp/strata-source',
        ]),
    'phase build-deps',
    `apt-get build-dep -y -q --no-install-recommends ${aArg}${pArg} /build/src`,
    'phase build',
    'getent passwd strata-build >/dev/null || useradd --system --home-dir /build --no-create-home --shell /bin/sh strata-build',
    'chown -R strata-build: /build',
    'cd /build/src',
    // The date of the source, not of the build: the same source gives the same .debs.
    'SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -STimestamp)',
    'export SOURCE_DATE_EPOCH',
    `DEB_BUILD_PROFILES=${q(prof)}`,
    'export DEB_BUILD_PROFILES',
    // No network, and not root: the package builds from what its Build-Depends installed.
    `unshare --net setpriv --reuid=strata-build --regid=strata-build --init-groups env HOME=/build dpkg-buildpackage -b -uc -us ${aArg}${prof ? ` --build-profiles=${q(prof)}` : ''}`,
    'phase collect',
    'cp /build/*.deb /run/strata/out/',
    'phase done',
  ].join('\n');
}

const PHASE_FAILURE: Record<string, string> = {
  apt: 'apt-get update failed',
  tools: 'the build tools (build-essential, dpkg-dev) could not be installed in the buildchroot',
  source: 'the source could not be unpacked',
  'source-package':
    'dpkg-source -b refused to make its source package (a change outside debian/ that no patch holds, or a missing upstream tarball?)',
  'build-deps': 'its Build-Depends cannot be installed',
  build: 'dpkg-buildpackage failed',
  collect: 'the build made no .deb',
};

/** Runs DEBUILD steps: the cache, the buildchroot, the build, the packages into the store. */
export class Debuilder {
  constructor(
    private readonly ctx: BuildContext,
    private readonly runner: StepRunner,
    private readonly snapshots: Snapshots,
    private readonly local: LocalDebs,
  ) {}

  async run(
    state: StageState,
    ins: DebuildInstruction,
  ): Promise<{ built: number; cached: number }> {
    const bc = await this.buildchrootOf(state, ins);
    const target = ins.arch ?? state.debArch ?? hostDebianArchitecture();
    const host = hostDebianArchitecture();
    if (bc.arch !== target && bc.arch !== host)
      throw new BuildStepError(
        ins.loc,
        `DEBUILD for ${target} in a buildchroot for ${bc.arch}: a buildchroot builds natively for its own architecture, or cross for another from the build host's (${host})`,
      );
    let built = 0;
    let cached = 0;
    for (const source of ins.sources) {
      // Only the built packages this source build-depends on are its inputs: changing one
      // package rebuilds those that build with it, not every DEBUILD after it.
      const wanted = new Set(buildDependsOf(await controlTextOf(this.ctx.context, source)));
      const localInputs = this.local.debs
        .filter((d) => wanted.has(d.package))
        .map((d) => d.blob.digest)
        .sort();
      const key = await debuildKey(this.ctx.keys, this.ctx.context, {
        scope: state,
        ins,
        source,
        buildchroot: bc.chain,
        target,
        inputs: localInputs,
      });
      const t0 = Date.now();
      const { noCache, cacheFrom = [], cacheTo } = this.ctx.opts;
      let entry = noCache ? undefined : await readDebuildCache(this.ctx.store, key);
      let from: string | undefined;
      for (const remote of noCache ? [] : cacheFrom) {
        if (entry) break;
        entry = await remote.getDebs(key);
        if (entry) from = remote.name;
      }
      const hit = entry !== undefined;
      if (entry) cached++;
      else {
        entry = await this.build(state, ins, source, key, bc, target);
        built++;
      }
      if (cacheTo) {
        try {
          await cacheTo.putDebs(entry);
        } catch (e) {
          if (e instanceof StrataError) throw new BuildStepError(ins.loc, e.message, { cause: e });
          throw e;
        }
      }
      this.local.add(entry.debs);
      this.local.addSources(entry.sources);
      state.debuilds.push({
        source,
        cacheKey: key,
        buildchroot: bc.chain,
        inputs: localInputs,
        packages: entry.debs.map((d) => `${d.package}=${d.version}`),
      });
      this.ctx.emit({
        type: 'debs',
        source,
        cached: hit,
        ...(from !== undefined ? { from } : {}),
        files: entry.debs.map((d) => d.filename),
        seconds: (Date.now() - t0) / 1000,
      });
    }
    return { built, cached };
  }

  /** The buildchroot the stage builds in: its own (BUILDCHROOT) or its FROM template's. */
  private async buildchrootOf(
    state: StageState,
    ins: DebuildInstruction,
  ): Promise<{
    chain: Digest;
    layers: StackLayer[];
    arch: string;
    packages: DebianPackage[];
    scope: StageState | undefined;
  }> {
    if (state.buildchroot !== undefined) {
      const bc = this.ctx.stages.get(state.buildchroot) as StageState;
      const chain = chainOf(bc.layers);
      if (chain === undefined)
        throw new BuildStepError(
          ins.loc,
          `DEBUILD: the buildchroot stage ${state.buildchroot} has no layers`,
        );
      return {
        chain,
        layers: stackOf(bc.layers),
        arch: bc.debArch ?? 'amd64',
        packages: bc.packages,
        scope: bc,
      };
    }
    if (state.inheritedBuildchroot) {
      const { manifest, config } = await this.ctx.store.readImage(
        state.inheritedBuildchroot,
        `buildchroot ${state.inheritedBuildchroot.digest}`,
      );
      const layers: BuiltLayer[] = manifest.layers.map((l, i) => {
        const diffId = config.rootfs.diff_ids[i] as Digest;
        return { desc: l, diffId, record: { diffId, createdBy: '' }, history: {} };
      });
      return {
        chain: chainId(layers.map((l) => l.diffId)) as Digest,
        layers: stackOf(layers),
        arch: config.strata?.architecture ?? debianArchitectureOf(configPlatform(config)),
        packages: config.strata?.packages ?? [],
        scope: undefined,
      };
    }
    throw new BuildStepError(
      ins.loc,
      'DEBUILD needs a buildchroot: name a stage with BUILDCHROOT, or build FROM a template that has one',
      {
        hint: 'e.g. FROM base AS buildchroot / INSTALL build-essential / FROM base / BUILDCHROOT buildchroot',
      },
    );
  }

  private async build(
    state: StageState,
    ins: DebuildInstruction,
    source: string,
    key: Digest,
    bc: { chain: Digest; layers: StackLayer[]; arch: string; packages: DebianPackage[] },
    target: string,
  ): Promise<DebuildEntry> {
    let emulated: boolean;
    try {
      emulated = !(await requireEmulation(bc.arch)).native;
    } catch (e) {
      if (e instanceof EmulatorMissingError)
        throw new BuildStepError(ins.loc, `DEBUILD: ${e.message}`, {
          cause: e,
          ...(e.hint ? { hint: e.hint } : {}),
        });
      throw e;
    }
    const name = await this.sourceName(source);
    const dsc = source.endsWith('.dsc');
    // A .dsc is checked against its files before anything is built from it.
    const given = dsc
      ? await this.keepSource(
          ins,
          source,
          name,
          path.join(this.ctx.context, path.dirname(source)),
          path.basename(source),
        )
      : undefined;
    const logs = logsDir(this.ctx.store.root);
    await fsp.mkdir(logs, { recursive: true });
    const logPath = path.join(logs, `debuild-${name}-${digestHex(key).slice(0, 12)}.log`);
    const log = createWriteStream(logPath);
    const work = await this.snapshots.scratch('debuild');
    try {
      const lower = await this.snapshots.ensure(bc.chain, bc.layers);
      const upper = path.join(work, 'upper');
      await fsp.mkdir(upper);
      // The build dependencies of an emulated buildchroot unpack natively, as in INSTALL.
      const kit = emulated ? await this.runner.emulation.nativeDpkgFor(bc.packages) : undefined;
      // What .strataignore leaves out of a tree is not copied into the build.
      const ignore = this.ctx.keys.contextIgnore();
      const inputs =
        ignore !== undefined && !dsc
          ? await debuildTreeInputs(this.ctx.context, ins, source, ignore)
          : undefined;
      const lists = await copyListsBind(work, this.ctx.context, inputs && [inputs.tree], ignore);
      const { code, tail } = await this.runner.chroot(state, {
        ins,
        work,
        upper,
        lower,
        sources: undefined,
        ...(lists ? { binds: [lists] } : {}),
        ...(kit ? { nativeDpkg: kit } : {}),
        // The script takes the network from the build (unshare --net) before it drops to the
        // unprivileged build user, who runs the package's own build.
        keepSysAdmin: true,
        command: [
          '/bin/sh',
          '-c',
          debuildScript({
            source,
            dsc,
            hostArch: target,
            profiles: ins.profiles,
            ...(inputs
              ? { ignored: { filtered: inputs.tree.filtered === true, origs: inputs.origs } }
              : {}),
          }),
        ],
        aptIndex: true,
        context: true,
        log: (chunk) => log.write(chunk),
      });
      await new Promise<void>((r) => log.end(r));
      this.ctx.checkAbort();
      const out = path.join(work, 'out');
      if (code !== 0) {
        const phase = (await fsp.readFile(path.join(out, 'phase'), 'utf8').catch(() => '')).trim();
        const what = PHASE_FAILURE[phase] ?? `the build failed with exit code ${code}`;
        const reason = phase === 'build' ? undefined : failureReason(tail.text());
        throw new BuildStepError(
          ins.loc,
          `DEBUILD ${source} (source package ${name}): ${what}${reason ? `: ${reason}` : ''}`,
          { output: tail.text(), hint: `the whole build log: ${logPath}` },
        );
      }
      const debs: BuiltDeb[] = [];
      for (const f of (await fsp.readdir(out)).filter((n) => n.endsWith('.deb')).sort()) {
        const file = path.join(out, f);
        const blob = await this.ctx.store.putBlob(createReadStream(file));
        debs.push(await builtDeb(file, f, blob));
      }
      if (debs.length === 0)
        throw new BuildStepError(
          ins.loc,
          `DEBUILD ${source} (source package ${name}): the build made no .deb`,
          {
            hint: `the whole build log: ${logPath}`,
          },
        );
      const made = given ?? (await this.madeSource(ins, source, name, path.join(out, 'source')));
      const entry: DebuildEntry = { key, kind: 'debuild', source, debs, sources: made };
      await writeDebuildCache(this.ctx.store, entry);
      return entry;
    } finally {
      log.end();
      await fsp.rm(work, { recursive: true, force: true });
    }
  }

  /** The source package the build made of a tree (in `dir`): its one .dsc and its files. */
  private async madeSource(
    ins: DebuildInstruction,
    source: string,
    name: string,
    dir: string,
  ): Promise<Descriptor[]> {
    const dscs = (await fsp.readdir(dir).catch(() => [])).filter((n) => n.endsWith('.dsc'));
    if (dscs.length !== 1)
      throw new BuildStepError(
        ins.loc,
        `DEBUILD ${source} (source package ${name}): dpkg-source -b made ${dscs.length} .dsc files, not one`,
      );
    return this.keepSource(ins, source, name, dir, dscs[0] as string);
  }

  /** Put a source package into the store, verified against its .dsc; a failure names the line. */
  private async keepSource(
    ins: DebuildInstruction,
    source: string,
    name: string,
    dir: string,
    dscName: string,
  ): Promise<Descriptor[]> {
    try {
      return (await storeSourcePackage(this.ctx.store, dir, dscName)).files;
    } catch (e) {
      if (!(e instanceof StrataError)) throw e;
      throw new BuildStepError(
        ins.loc,
        `DEBUILD ${source} (source package ${name}): its source package: ${e.message}`,
        { cause: e },
      );
    }
  }

  /** The source package's name, for messages and the log. */
  private async sourceName(source: string): Promise<string> {
    const m = /^Source:\s*(\S+)/m.exec(await controlTextOf(this.ctx.context, source));
    return m?.[1] ?? path.basename(source);
  }
}
