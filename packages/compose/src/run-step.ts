import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Digest, Distribution, StrataError, counted } from '@strata/oci';
import { AptSources, essentialAmong } from '@strata/debian';
import { AptState } from './apt-state';
import { bootstrapStep } from './bootstrap-step';
import type { CacheEntry } from './cache';
import { Emulation } from './emulation';
import { Snapshots } from './snapshots';
import { statusOfLowers } from './remove';
import type { CopyFrom, Instruction } from './stratafile';
import { BuildStepError, checkManySources } from './stage-keys';
import { CopySource, CopySourceError, copySources } from './copy-sources';
import { copyListsBind, heredocsBind } from './copy-lists';
import { stepCommand } from './step-command';
import { checkCopyTarget, packageAt } from './copy-target';
import { OutputTail, failureReason, fullDisk } from './step-output';
import { BuildContext, StageState, chainOf, stackOf } from './build-state';
import { APT_AUTH, runSecrets } from './step-secrets';
import { ChrootOptions, StepChroot } from './step-chroot';
import { commitStep } from './step-layer';

/** Where a COPY --from sees the result tree of the stage it copies from. */
export const FROM_TREE = '/run/strata/from';

export { APT_AUTH, APT_AUTH_TARGET } from './step-secrets';

/** Runs a layer step that missed the cache: in the sandbox (or mmdebstrap), then packs its layer. */
export class StepRunner {
  private readonly snapshots: Snapshots;
  private readonly apt: AptState;
  readonly emulation: Emulation;

  /** Whole trees: a COPY --from reads its stage's result as one directory. */
  private readonly trees: Snapshots;

  private readonly sandbox: StepChroot;

  constructor(private readonly ctx: BuildContext) {
    this.snapshots = new Snapshots(ctx.store);
    this.trees = new Snapshots(ctx.store, { mergeDepth: 1 });
    this.apt = new AptState(ctx.store.root);
    this.emulation = new Emulation(ctx);
    this.sandbox = new StepChroot(ctx, this.snapshots, this.apt);
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
            (copy ?? ins.sources).length + (ins.heredocs?.length ?? 0) > 1 ||
              ins.dest.endsWith('/'),
          );
        await this.runInRoot(state, ins, work, upper, lower, sources, emulated, copy, tree);
      }
      return await commitStep(this.ctx, this.snapshots, {
        state,
        ins,
        key,
        upper,
        lower,
        t0,
        info,
        copy,
      });
    } finally {
      await fsp.rm(work, { recursive: true, force: true });
    }
  }

  /** Run `command` in a chroot on the overlay of `lower` and `upper` (see StepChroot.run). */
  chroot(state: StageState, o: ChrootOptions): Promise<{ code: number; tail: OutputTail }> {
    return this.sandbox.run(state, o);
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
    const heredocs = ins.kind === 'COPY' ? await heredocsBind(work, ins.heredocs) : undefined;
    const binds = [
      ...(lists ? [lists] : []),
      ...(heredocs ? [heredocs] : []),
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
      secrets: ins.kind === 'RUN' ? runSecrets(ins, this.ctx.opts.secrets) : [],
      command: stepCommand(ins, copy),
      // A COPY --from sees the stage it copies from, read-only, instead of the context.
      context:
        (ins.kind === 'COPY' && tree === undefined && ins.sources.length > 0) ||
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
