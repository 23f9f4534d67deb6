import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  Descriptor,
  Digest,
  Distribution,
  LayerRecord,
  StrataError,
  ToolFailedError,
  chainId,
  counted,
} from '@strata/oci';
import { createLayer, packTree } from '@strata/layer';
import { AptSources, aptConf, essentialAmong, parseDeb822, parseDpkgStatus } from '@strata/debian';
import { isoDate } from '@strata/template';
import { NativeDpkg, debControl, runInSandbox } from '@strata/tools';
import { AptState } from './apt-state';
import { BOOTSTRAP_HOST_FILES, bootstrapStep } from './bootstrap-step';
import { CacheEntry, writeCache } from './cache';
import { Emulation } from './emulation';
import { cleanUpper } from './upper';
import { Snapshots } from './snapshots';
import { statusOfLowers } from './remove';
import type { CopyFrom, Instruction } from './stratafile';
import { BuildStepError, checkManySources, stepEnv } from './stage-keys';
import { CopySource, CopySourceError, copySources } from './copy-sources';
import { StepBind, copyListsBind } from './copy-lists';
import { stepCommand } from './step-command';
import { checkCopyTarget, packageAt } from './copy-target';
import { OutputTail, Redactor, failureReason, fullDisk } from './step-output';
import { BuildContext, StageState, chainOf, packageDelta, stackOf } from './build-state';

/** Where a step sees the read-only snapshot of the store's apt state that its view links to. */
const APT_SNAPSHOT = '/run/strata/apt-snapshot';

/** Where a COPY --from sees the result tree of the stage it copies from. */
export const FROM_TREE = '/run/strata/from';

/** The build secret that is apt's auth.conf for the apt steps. */
export const APT_AUTH = 'apt-auth';
/** Where the apt steps see it (apt reads every file of auth.conf.d). */
export const APT_AUTH_TARGET = '/etc/apt/auth.conf.d/strata.conf';

/** A secret as the sandbox mounts it. */
type StepSecret = { target: string; value: Buffer; mode: number };

/** Runs a layer step that missed the cache: in the sandbox (or mmdebstrap), then packs its layer. */
export class StepRunner {
  private readonly snapshots: Snapshots;
  private readonly apt: AptState;
  readonly emulation: Emulation;

  /** Whole trees: a COPY --from reads its stage's result as one directory. */
  private readonly trees: Snapshots;

  constructor(private readonly ctx: BuildContext) {
    this.snapshots = new Snapshots(ctx.store);
    this.trees = new Snapshots(ctx.store, { mergeDepth: 1 });
    this.apt = new AptState(ctx.store.root);
    this.emulation = new Emulation(ctx);
  }

  /** The packages (`name=version`) of an INSTALL's .deb files in the build context. */
  private async contextDebs(debs: ReadonlyArray<{ path: string }>): Promise<Set<string>> {
    const out = new Set<string>();
    for (const d of debs) {
      const fields = parseDeb822(await debControl(path.join(this.ctx.context, d.path)))[0];
      const name = fields?.get('package');
      const version = fields?.get('version');
      if (name && version) out.add(`${name}=${version}`);
    }
    return out;
  }

  async execute(
    state: StageState,
    ins: Instruction,
    key: Digest,
    sources: AptSources | undefined,
    copy?: readonly CopySource[],
    source?: StageState,
  ): Promise<CacheEntry> {
    const emulated = await this.emulation.require(state, ins);
    const t0 = Date.now();
    const work = await this.snapshots.scratch('step');
    try {
      const upper = path.join(work, 'upper');
      await fsp.mkdir(upper);
      let lower: string[] = [];
      let info: { distribution?: Distribution; debArch?: string } = {};
      if (ins.kind === 'BOOTSTRAP') {
        if (state.layers.length > 0)
          throw new BuildStepError(ins.loc, 'BOOTSTRAP needs FROM scratch');
        info = await bootstrapStep(
          this.ctx,
          this.apt,
          state,
          ins,
          upper,
          sources as AptSources,
          this.ctx.opts.secrets?.[APT_AUTH],
        );
      } else {
        const chain = chainOf(state.layers);
        if (chain === undefined)
          throw new BuildStepError(
            ins.loc,
            `${ins.kind} has no root filesystem to run in: FROM scratch needs BOOTSTRAP first`,
          );
        const from = state.from;
        lower = await this.snapshots
          .ensure(chain, stackOf(state.layers), (bytes, total) =>
            this.ctx.emit({ type: 'unpack', bytes, total }),
          )
          .catch((e: unknown) => {
            // Only the template's layers are unpacked: what is wrong is the template the FROM
            // line names (a hostile entry, a damaged blob), not the step that needed it.
            if (from?.layers === state.layers.length) throw onBase(from, e);
            throw e;
          });
        if (ins.kind === 'REMOVE') {
          const essential = essentialAmong((await statusOfLowers(lower)) ?? '', ins.packages);
          if (essential.length > 0)
            throw new BuildStepError(
              ins.loc,
              `REMOVE ${essential.map((e) => `${e.name} (${e.field}: yes)`).join(', ')}: dpkg marks ${essential.length === 1 ? 'it' : 'them'} as needed by every system of this template, and apt refuses to remove such packages`,
              { hint: 'Debian keeps such packages in every system: keep it' },
            );
        }
        let tree: string | undefined;
        if (ins.kind === 'COPY' && ins.from) {
          ({ tree, copy } = await this.stageSources(ins, source));
        }
        if (ins.kind === 'COPY')
          await checkCopyTarget(
            ins,
            lower,
            (copy ?? ins.sources).length > 1 || ins.dest.endsWith('/'),
          );
        await this.runInRoot(state, ins, work, upper, lower, sources, emulated, copy, tree);
      }
      const cleaned = await cleanUpper(
        upper,
        lower,
        state.excludes,
        ins.kind === 'BOOTSTRAP' ? BOOTSTRAP_HOST_FILES : [],
      );
      this.ctx.checkAbort();
      const compression = this.ctx.opts.compression ?? 'zstd';
      const epoch = await this.ctx.epoch(state);
      // A step that changed nothing (no file, no whiteout, no changed metadata, which would each
      // be in the upper) makes no layer, as BuildKit makes none: only its history entry.
      if (ins.kind !== 'BOOTSTRAP' && (await fsp.readdir(upper)).length === 0) {
        const entry: CacheEntry = {
          key,
          emptyLayer: true,
          record: { createdBy: ins.text, cacheKey: key },
          packages: state.packages,
          created: isoDate(new Date(epoch * 1000)),
          excluded: cleaned.byPattern,
        };
        await writeCache(this.ctx.store, entry);
        this.ctx.emit({ type: 'layer', seconds: (Date.now() - t0) / 1000, added: [], removed: [] });
        return entry;
      }
      const tar = packTree({
        root: upper,
        overlay: lower.length > 0,
        sourceDateEpoch: epoch,
        xattrs: cleaned.xattrs,
      });
      const layer = createLayer(tar, compression);
      tar.on('error', (e) => layer.blob.destroy(e));
      // Packing a large upper takes seconds: an interrupted build stops it rather than waiting.
      const signal = this.ctx.opts.signal;
      const stop = () => tar.destroy(new StrataError('INTERRUPTED', 'build interrupted'));
      signal?.addEventListener('abort', stop, { once: true });
      const packed = (async () => {
        const blob = await this.ctx.store.putBlob(layer.blob);
        return { blob, ...(await layer.result) };
      })();
      const { blob, diffId, mediaType } = await packed.finally(() =>
        signal?.removeEventListener('abort', stop),
      );
      this.ctx.checkAbort();
      await this.ctx.store.recordDiffId(blob.digest, diffId);
      const desc: Descriptor = { mediaType, digest: blob.digest, size: blob.size };

      // Packages after the step: the upper's dpkg status if the step touched it.
      let packages = state.packages;
      const status = await fsp
        .readFile(path.join(upper, 'var/lib/dpkg/status'), 'utf8')
        .catch(() => undefined);
      if (status !== undefined) packages = parseDpkgStatus(status);
      const delta = packageDelta(state.packages, packages);
      if (info.distribution) state.distribution = info.distribution;
      if (info.debArch) state.debArch = info.debArch;
      const record: LayerRecord = { diffId, createdBy: ins.text, cacheKey: key };
      if (delta.added.length) record.packagesAdded = delta.added;
      if (delta.removed.length) record.packagesRemoved = delta.removed;
      if (ins.kind === 'INSTALL' && ins.debs.length > 0) {
        const local = await this.contextDebs(copy ?? ins.debs.map((d) => ({ path: d })));
        const fromContext = delta.added.filter((a) => local.has(a));
        if (fromContext.length > 0) record.localDebs = fromContext;
      }
      const repo = await this.ctx.localRepo();
      if (repo !== undefined) {
        const own = new Set(repo.packages.map((p) => `${p.name}=${p.version}`));
        const fromRepo = delta.added.filter((a) => own.has(a) && !record.localDebs?.includes(a));
        if (fromRepo.length > 0) record.ownDebs = fromRepo;
      }
      const created = isoDate(new Date(epoch * 1000));
      const entry: CacheEntry = {
        key,
        layer: desc,
        diffId,
        record,
        packages,
        created,
        excluded: cleaned.byPattern,
        ...(info.distribution ? { distribution: info.distribution } : {}),
        ...(info.debArch ? { architecture: info.debArch } : {}),
      };
      await writeCache(this.ctx.store, entry);
      const newChain = chainId([...state.layers.map((l) => l.diffId), diffId]) as Digest;
      const parent = chainOf(state.layers);
      await this.snapshots.commit(
        newChain,
        upper,
        parent === undefined ? { kind: 'full' } : { kind: 'diff', parent },
      );
      this.ctx.emit({
        type: 'layer',
        layer: desc,
        seconds: (Date.now() - t0) / 1000,
        added: delta.added,
        removed: delta.removed,
      });
      return entry;
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }

  /**
   * Run `command` in a chroot on the overlay of `lower` and `upper`, in the sandbox: with the
   * stage's apt sources (and the build's own packages, once DEBUILD made some), apt's
   * configuration, this step's copy of the store's apt state, and (with `context`) the build
   * context read-only, under /run/strata. `binds` adds directories there. Output goes to the
   * build's events and `log`.
   */
  async chroot(
    state: StageState,
    o: {
      /** The instruction the step runs, for its errors. */
      ins: Instruction;
      work: string;
      upper: string;
      lower: string[];
      sources: AptSources | undefined;
      command: string[];
      aptIndex: boolean;
      /**
       * The step reads the build context (COPY, an INSTALL of local .debs, DEBUILD): only what
       * its cache key holds, and never writes it. A RUN, keyed on its text alone, sees none.
       */
      context?: boolean;
      binds?: StepBind[];
      env?: Record<string, string>;
      /** Secrets the step sees (RUN --mount=type=secret); an apt step gets `apt-auth` too. */
      secrets?: StepSecret[];
      /** apt's dpkg unpacks with the host's dpkg (a foreign root's apt step; see nativeDpkg). */
      nativeDpkg?: NativeDpkg;
      /** See SandboxSpec.keepSysAdmin: DEBUILD's own script only. */
      keepSysAdmin?: boolean;
      log?: (chunk: Buffer) => void;
    },
  ): Promise<{ code: number; tail: OutputTail }> {
    const secrets = [...(o.secrets ?? [])];
    // The steps that fetch from the apt sources (INSTALL, UPGRADE, DEBUILD) see auth.conf.
    const aptAuth = this.ctx.opts.secrets?.[APT_AUTH];
    if (o.aptIndex && aptAuth !== undefined && !secrets.some((s) => s.target === APT_AUTH_TARGET))
      secrets.push({ target: APT_AUTH_TARGET, value: aptAuth, mode: 0o600 });
    const redactor = new Redactor(secrets.map((s) => s.value));
    const stage = path.join(o.work, 'stage');
    const out = path.join(o.work, 'out');
    const ovlWork = path.join(o.work, 'ovl');
    const merged = path.join(o.work, 'merged');
    for (const d of [stage, out, ovlWork, merged, path.join(stage, 'sources.list.d')])
      await fsp.mkdir(d, { recursive: true });
    const src = o.sources ?? (await this.ctx.keys.sourcesFor(state));
    await fsp.writeFile(path.join(stage, 'sources.list'), src.text);
    await fsp.writeFile(
      path.join(stage, 'apt.conf'),
      aptConf(o.nativeDpkg ? { dpkg: o.nativeDpkg.wrapper } : {}),
    );
    const repo = await this.ctx.localRepo();
    if (repo)
      await fsp.writeFile(
        path.join(stage, 'sources.list.d', 'strata-local.list'),
        `deb [trusted=yes] file:/run/strata/local ./\n`,
      );
    const mirror = o.aptIndex ? await this.ctx.keys.releasesOf(src) : undefined;
    if (o.aptIndex) {
      // The build's own repository is part of the state: a new package there updates the lists.
      if (mirror)
        await fsp.writeFile(
          path.join(stage, 'apt-index'),
          [mirror.digest, ...mirror.releases, ...(repo ? [repo.release] : [])].join('\n') + '\n',
        );
    }
    const sourcesKey = src.digest.slice(7, 23);
    const apt = await this.apt.checkout(sourcesKey, path.join(o.work, 'apt'), APT_SNAPSHOT);
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/root',
      LC_ALL: 'C.UTF-8',
      DEBIAN_FRONTEND: 'noninteractive',
      APT_CONFIG: '/run/strata/apt.conf',
    };
    env.SOURCE_DATE_EPOCH = String(await this.ctx.epoch(state));
    const tail = new OutputTail();
    const emit = (chunk: Buffer) => {
      if (chunk.length === 0) return;
      tail.push(chunk);
      o.log?.(chunk);
      this.ctx.emit({ type: 'output', chunk });
    };
    for (const [k, v] of stepEnv(state)) env[k] = v;
    Object.assign(env, o.env ?? {});
    const mount = await this.snapshots.mountLowers(o.lower);
    let code: number;
    try {
      code = await runInSandbox({
        lower: mount.lower,
        mountCwd: mount.cwd,
        upper: o.upper,
        work: ovlWork,
        merged,
        stage,
        binds: [
          { source: apt.lists, target: 'lists' },
          { source: apt.cache, target: 'cache' },
          { source: apt.archives, target: 'archives' },
          {
            source: apt.snapshot,
            target: APT_SNAPSHOT.slice('/run/strata/'.length),
            readOnly: true,
          },
          ...(o.context ? [{ source: this.ctx.context, target: 'context', readOnly: true }] : []),
          { source: out, target: 'out' },
          ...(repo ? [{ source: repo.dir, target: 'local' }] : []),
          ...(o.nativeDpkg ? [{ source: o.nativeDpkg.dir, target: 'native', readOnly: true }] : []),
          ...(o.binds ?? []),
        ],
        ...(secrets.length > 0
          ? { secrets, secretsDir: await mkdirIn(path.join(o.work, 'secrets')) }
          : {}),
        resolvConf: this.ctx.opts.resolvConf ?? '/etc/resolv.conf',
        env,
        command: o.command,
        ...(o.keepSysAdmin ? { keepSysAdmin: true } : {}),
        onOutput: (chunk) => emit(redactor.push(chunk)),
        signal: this.ctx.opts.signal,
      }).catch((e: unknown) => {
        // The sandbox could not set up the step's root: a failure of this step's line all the same.
        if (e instanceof ToolFailedError && e.tool === 'sandbox')
          throw new BuildStepError(o.ins.loc, `${o.ins.kind}: ${e.message}`, { cause: e });
        throw e;
      });
      emit(redactor.end());
    } finally {
      // Lists a failed step updated and packages it downloaded are kept as well. Only the apt
      // steps give back: a RUN's apt-get is its own business.
      if (o.aptIndex && !this.ctx.opts.signal?.aborted)
        await this.apt.checkin(sourcesKey, apt, mirror);
    }
    return { code, tail };
  }

  /**
   * What a `COPY --from` reads: the source stage's result as one unpacked tree (a snapshot of
   * its chain, made whole if it is not), and its sources resolved in that tree, symlinks as in a
   * chroot of it. Errors name the source's place on the line.
   */
  private async stageSources(
    ins: Extract<Instruction, { kind: 'COPY' }>,
    source: StageState | undefined,
  ): Promise<{ tree: string; copy: CopySource[] }> {
    const from = ins.from as CopyFrom;
    const chain = source && chainOf(source.layers);
    if (source === undefined || chain === undefined)
      throw new BuildStepError(from.loc, `COPY --from=${from.ref}: that stage has no result`);
    const [tree] = await this.trees.ensure(chain, stackOf(source.layers), (bytes, total) =>
      this.ctx.emit({ type: 'unpack', bytes, total }),
    );
    if (tree === undefined) throw new BuildStepError(from.loc, `snapshot ${chain} is empty`);
    let copy: CopySource[];
    try {
      copy = copySources(tree, ins.sources, { tree: `stage ${source.name}` });
    } catch (e) {
      if (!(e instanceof CopySourceError)) throw e;
      throw new BuildStepError(
        ins.sourceLocs[e.index] ?? ins.loc,
        `COPY --from=${from.ref} ${e.message}`,
        { cause: e },
      );
    }
    checkManySources(ins, copy);
    return { tree, copy };
  }

  /** The secrets a RUN mounts that the build was given; a required one missing fails the step. */
  private runSecrets(ins: Extract<Instruction, { kind: 'RUN' }>): StepSecret[] {
    const out: StepSecret[] = [];
    for (const m of ins.mounts) {
      const value = this.ctx.opts.secrets?.[m.id];
      if (value === undefined) {
        if (m.required)
          throw new BuildStepError(ins.loc, `RUN: the required secret ${m.id} was not given`, {
            hint: `strata build --secret id=${m.id},src=FILE (or env=VARIABLE)`,
          });
        continue;
      }
      out.push({ target: m.target, value, mode: m.mode });
    }
    return out;
  }

  private async runInRoot(
    state: StageState,
    ins: Instruction,
    work: string,
    upper: string,
    lower: string[],
    sources: AptSources | undefined,
    emulated: boolean,
    copy: readonly CopySource[] | undefined,
    tree?: string,
  ): Promise<void> {
    const out = path.join(work, 'out');
    const apt = ins.kind === 'INSTALL' || ins.kind === 'UPGRADE';
    const kit = apt && emulated ? await this.emulation.nativeDpkgFor(state.packages) : undefined;
    // A COPY --from reads its stage's tree, which no .strataignore filters.
    const lists =
      ins.kind === 'COPY' && tree === undefined
        ? await copyListsBind(work, this.ctx.context, copy, this.ctx.keys.contextIgnore())
        : undefined;
    const binds = [
      ...(lists ? [lists] : []),
      ...(tree !== undefined
        ? [{ source: tree, target: FROM_TREE.slice('/run/strata/'.length), readOnly: true }]
        : []),
    ];
    const { code, tail } = await this.chroot(state, {
      ins,
      work,
      upper,
      lower,
      sources,
      ...(binds.length > 0 ? { binds } : {}),
      secrets: ins.kind === 'RUN' ? this.runSecrets(ins) : [],
      command: stepCommand(ins, copy),
      // A COPY --from sees the stage it copies from, read-only, instead of the context.
      context:
        (ins.kind === 'COPY' && tree === undefined) ||
        (ins.kind === 'INSTALL' && ins.debs.length > 0),
      // The mirror state this step's key was made from: its apt-get update is skipped when the
      // kept lists already hold it (see stepCommand).
      aptIndex: apt,
      ...(kit ? { nativeDpkg: kit } : {}),
    });
    this.ctx.checkAbort();
    if (code !== 0) {
      const output = tail.text();
      const full = await fullDisk(upper, output, this.snapshots.dir);
      if (full)
        throw new BuildStepError(
          ins.loc,
          `${ins.kind} failed with exit code ${code}: ${full.message}`,
          {
            output,
            cause: full,
          },
        );
      const reason = failureReason(output);
      throw new BuildStepError(
        (ins.kind === 'INSTALL' && reason !== undefined ? packageAt(ins, reason) : undefined) ??
          ins.loc,
        `${ins.kind} failed with exit code ${code}${reason ? `: ${reason}` : ''}`,
        { output },
      );
    }
    if (ins.kind === 'REMOVE') {
      const survivors = (await fsp.readFile(path.join(out, 'survivors'), 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean);
      if (survivors.length > 0) {
        const msg = `REMOVE left ${counted(survivors.length, 'file')} the removed packages owned: ${survivors.slice(0, 5).join(', ')}${survivors.length > 5 ? ', …' : ''}`;
        if (ins.strict)
          throw new BuildStepError(ins.loc, msg, {
            hint: 'drop --strict-remove to accept, or RUN rm them',
          });
        this.ctx.emit({ type: 'warning', message: msg, loc: ins.loc });
      }
    }
  }
}

async function mkdirIn(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}

/** A FROM template that cannot be unpacked, as an error of its FROM line. */
function onBase(from: NonNullable<StageState['from']>, e: unknown): unknown {
  if (!(e instanceof StrataError) || e.code === 'INTERRUPTED' || e.code === 'NO_SPACE') return e;
  return new BuildStepError(
    from.loc,
    `FROM ${from.ref}: the template cannot be unpacked: ${e.message}`,
    {
      cause: e,
      hint: e.hint ?? `the template ${from.ref} is damaged or hostile: build FROM another one`,
    },
  );
}
