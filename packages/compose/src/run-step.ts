import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  DebianPackage,
  Descriptor,
  Digest,
  Distribution,
  LayerRecord,
  NoSpaceError,
  StrataError,
  chainId,
} from '@strata/oci';
import { createLayer, packTree } from '@strata/layer';
import { AptSources, aptConf, essentialAmong, parseDpkgStatus } from '@strata/debian';
import { DEFAULT_EXCLUSIONS, isoDate, readRootfsFacts } from '@strata/template';
import {
  EmulatorMissingError,
  NativeDpkg,
  kitRefusal,
  mmdebstrap,
  nativeDpkg,
  requireBootstrapEmulation,
  requireEmulation,
  runInSandbox,
} from '@strata/tools';
import { AptState } from './apt-state';
import { CacheEntry, writeCache } from './cache';
import { cleanUpper } from './upper';
import { Snapshots } from './snapshots';
import { statusOfLowers } from './remove';
import type { Instruction } from './stratafile';
import { BuildStepError, stepArchitecture, stepEnv } from './stage-keys';
import { stepCommand } from './step-command';
import { OutputTail, Redactor, failureReason } from './step-output';
import { BuildContext, StageState, chainOf, packageDelta, stackOf } from './build-state';

/** The build secret that is apt's auth.conf for the apt steps. */
export const APT_AUTH = 'apt-auth';
/** Where the apt steps see it (apt reads every file of auth.conf.d). */
export const APT_AUTH_TARGET = '/etc/apt/auth.conf.d/strata.conf';

/** A secret as the sandbox mounts it. */
type StepSecret = { target: string; value: Buffer; mode: number };

/** Host-provided files that BOOTSTRAP's output must not keep (mmdebstrap writes them). */
const HOST_FILES = DEFAULT_EXCLUSIONS.filter((r) => r.action === 'drop').map((r) => r.pattern);

/** Runs a layer step that missed the cache: in the sandbox (or mmdebstrap), then packs its layer. */
export class StepRunner {
  private readonly snapshots: Snapshots;
  private readonly apt: AptState;
  /** The host's dpkg for foreign roots, set up by the first apt step that runs emulated. */
  private kit?: Promise<NativeDpkg | undefined>;

  constructor(private readonly ctx: BuildContext) {
    this.snapshots = new Snapshots(ctx.store);
    this.apt = new AptState(ctx.store.root);
  }

  async execute(
    state: StageState,
    ins: Instruction,
    key: Digest,
    sources: AptSources | undefined,
  ): Promise<CacheEntry> {
    const emulated = await this.requireEmulation(state, ins);
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
        info = await this.bootstrap(state, ins, upper, sources as AptSources);
      } else {
        const chain = chainOf(state.layers);
        if (chain === undefined)
          throw new BuildStepError(
            ins.loc,
            `${ins.kind} has no root filesystem to run in: FROM scratch needs BOOTSTRAP first`,
          );
        lower = await this.snapshots.ensure(chain, stackOf(state.layers), (bytes, total) =>
          this.ctx.emit({ type: 'unpack', bytes, total }),
        );
        if (ins.kind === 'REMOVE') {
          const essential = essentialAmong((await statusOfLowers(lower)) ?? '', ins.packages);
          if (essential.length > 0)
            throw new BuildStepError(
              ins.loc,
              `REMOVE ${essential.map((e) => `${e.name} (${e.field}: yes)`).join(', ')}: dpkg marks ${essential.length === 1 ? 'it' : 'them'} as needed by every system of this template, and apt refuses to remove such packages`,
              { hint: 'Debian keeps such packages in every system: keep it' },
            );
        }
        await this.runInRoot(state, ins, work, upper, lower, sources, emulated);
      }
      const cleaned = await cleanUpper(
        upper,
        lower,
        ins.kind === 'BOOTSTRAP' ? [...HOST_FILES, ...state.excludes] : state.excludes,
      );
      const compression = this.ctx.opts.compression ?? 'zstd';
      const epoch = await this.ctx.epoch(state);
      const tar = packTree({
        root: upper,
        overlay: lower.length > 0,
        sourceDateEpoch: epoch,
        xattrs: cleaned.xattrs,
      });
      const layer = createLayer(tar, compression);
      tar.on('error', (e) => layer.blob.destroy(e));
      const blob = await this.ctx.store.putBlob(layer.blob);
      const { diffId, mediaType } = await layer.result;
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
   * configuration, this step's copy of the store's apt state, and the build context, under
   * /run/strata. `binds` adds directories there. Output goes to the build's events and `log`.
   */
  async chroot(
    state: StageState,
    o: {
      work: string;
      upper: string;
      lower: string[];
      sources: AptSources | undefined;
      command: string[];
      aptIndex: boolean;
      binds?: Array<{ source: string; target: string }>;
      env?: Record<string, string>;
      /** Secrets the step sees (RUN --mount=type=secret); an apt step gets `apt-auth` too. */
      secrets?: StepSecret[];
      /** apt's dpkg unpacks with the host's dpkg (a foreign root's apt step; see nativeDpkg). */
      nativeDpkg?: NativeDpkg;
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
    if (o.aptIndex) {
      const mirror = await this.ctx.keys.releasesOf(src);
      // The build's own repository is part of the state: a new package there updates the lists.
      if (mirror)
        await fsp.writeFile(
          path.join(stage, 'apt-index'),
          [mirror.digest, ...mirror.releases, ...(repo ? [repo.release] : [])].join('\n') + '\n',
        );
    }
    const sourcesKey = src.digest.slice(7, 23);
    const apt = await this.apt.checkout(sourcesKey, path.join(o.work, 'apt'));
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
          { source: this.ctx.context, target: 'context' },
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
        onOutput: (chunk) => emit(redactor.push(chunk)),
        signal: this.ctx.opts.signal,
      });
      emit(redactor.end());
    } finally {
      // Lists a failed step updated and packages it downloaded are kept as well.
      if (!this.ctx.opts.signal?.aborted) await this.apt.checkin(sourcesKey, apt);
    }
    return { code, tail };
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

  /**
   * A step of a foreign template runs under qemu-user: check, before anything starts, that this
   * host can do that, so that the build fails on the step's line with the fix instead of with an
   * "Exec format error" from inside the chroot (or mmdebstrap's own complaint). True when the
   * step runs emulated.
   */
  private async requireEmulation(state: StageState, ins: Instruction): Promise<boolean> {
    // A template that records no architecture is taken for amd64 in its key and config, but
    // what it really holds is unknown here: let its steps try.
    if (ins.kind !== 'BOOTSTRAP' && state.debArch === undefined) return false;
    const arches =
      ins.kind === 'BOOTSTRAP' && ins.architecture !== undefined
        ? ins.architecture.split(',')
        : [stepArchitecture(state, ins)];
    try {
      let emulated = false;
      for (const arch of arches) {
        if (ins.kind === 'BOOTSTRAP') await requireBootstrapEmulation(arch);
        else emulated = !(await requireEmulation(arch)).native || emulated;
      }
      return emulated;
    } catch (e) {
      if (e instanceof EmulatorMissingError)
        throw new BuildStepError(ins.loc, `${ins.kind}: ${e.message}`, {
          cause: e,
          ...(e.hint !== undefined ? { hint: e.hint } : {}),
        });
      throw e;
    }
  }

  /**
   * The host's dpkg for an emulated apt step in a root that holds `packages`, when the build
   * allows it and the kit takes the root's dpkg (see kitRefusal). Otherwise the step's output
   * says why its packages are unpacked under emulation.
   */
  async nativeDpkgFor(packages: readonly DebianPackage[]): Promise<NativeDpkg | undefined> {
    if (this.ctx.opts.nativeDpkg === false) return undefined;
    const say = (line: string) =>
      this.ctx.emit({ type: 'output', chunk: Buffer.from(`strata: ${line}\n`) });
    this.kit ??= nativeDpkg(path.join(this.ctx.store.root, '.strata', 'native')).catch(
      (e: unknown) => {
        say(
          `the host's dpkg could not be set up for this root (${e instanceof Error ? e.message : String(e)}); unpacking under emulation`,
        );
        return undefined;
      },
    );
    const kit = await this.kit;
    if (kit === undefined) return undefined;
    const why = kitRefusal(kit, packages.find((p) => p.name === 'dpkg')?.version);
    if (why !== undefined) say(why);
    return why === undefined ? kit : undefined;
  }

  private async bootstrap(
    state: StageState,
    ins: Extract<Instruction, { kind: 'BOOTSTRAP' }>,
    target: string,
    sources: AptSources,
  ): Promise<{ distribution: Distribution; debArch?: string }> {
    const work = path.dirname(target);
    const sourcesFile = path.join(work, 'sources.list');
    await fsp.writeFile(sourcesFile, sources.text);
    await fsp.rmdir(target);
    const sourcesKey = sources.digest.slice(7, 23);
    const apt = await this.apt.checkout(sourcesKey, path.join(work, 'apt'));
    const authConf = this.ctx.opts.secrets?.[APT_AUTH];
    const authDir = path.join(work, 'apt-auth');
    if (authConf !== undefined) await fsp.mkdir(authDir);
    try {
      await mmdebstrap({
        suite: ins.suite,
        target,
        variant: ins.variant,
        include: ins.include,
        components: ins.components,
        // Without --architecture: the platform being built, if one was asked for.
        architecture: ins.architecture ?? state.debArch,
        sources: ins.mirror ?? sourcesFile,
        debCache: apt.archives,
        sourceDateEpoch: await this.ctx.epoch(state),
        ...(authConf !== undefined ? { auth: { conf: authConf, dir: authDir } } : {}),
        onOutput: (chunk) => this.ctx.emit({ type: 'output', chunk }),
        signal: this.ctx.opts.signal,
      });
    } catch (e) {
      if (e instanceof StrataError)
        throw new BuildStepError(ins.loc, `BOOTSTRAP ${ins.suite}: ${e.message}`, { cause: e });
      throw e;
    } finally {
      // What was downloaded stays for the next build, even when the bootstrap failed later on.
      if (!this.ctx.opts.signal?.aborted) await this.apt.checkin(sourcesKey, apt);
    }
    const facts = await readRootfsFacts(target);
    return { distribution: facts.distribution, debArch: facts.architecture };
  }

  private async runInRoot(
    state: StageState,
    ins: Instruction,
    work: string,
    upper: string,
    lower: string[],
    sources: AptSources | undefined,
    emulated: boolean,
  ): Promise<void> {
    const out = path.join(work, 'out');
    const apt = ins.kind === 'INSTALL' || ins.kind === 'UPGRADE';
    const kit = apt && emulated ? await this.nativeDpkgFor(state.packages) : undefined;
    const { code, tail } = await this.chroot(state, {
      work,
      upper,
      lower,
      sources,
      secrets: ins.kind === 'RUN' ? this.runSecrets(ins) : [],
      command: stepCommand(ins),
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
        const msg = `REMOVE left ${survivors.length} files the removed packages owned: ${survivors.slice(0, 5).join(', ')}${survivors.length > 5 ? ', …' : ''}`;
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

/** Free space below which a filesystem counts as full (the larger of this and 1% of it). */
const LOW_SPACE = 16 << 20;

/**
 * A step that failed saying the disk is full, when the filesystem its files go to (the upper
 * dir, in the store's snapshot directory) is in fact full: that directory, as a NoSpaceError. A
 * step that ran out of room elsewhere (a tmpfs of its own) keeps the step's own words.
 */
export async function fullDisk(
  upper: string,
  output: string,
  dir: string,
): Promise<NoSpaceError | undefined> {
  if (!/No space left on device|Disk quota exceeded/i.test(output)) return undefined;
  const s = await fsp.statfs(upper).catch(() => undefined);
  if (s === undefined) return undefined;
  const free = s.bavail * s.bsize;
  return free < Math.max(LOW_SPACE, (s.blocks * s.bsize) / 100) ? new NoSpaceError(dir) : undefined;
}
