/**
 * A step's run in its chroot: the overlay of its root, the sandbox, and what it sees under
 * /run/strata (apt's sources, configuration and state, the build context, the binds a step adds).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { ToolFailedError } from '@strata/oci';
import { AptSources, aptConf } from '@strata/debian';
import { NativeDpkg, runInSandbox } from '@strata/tools';
import type { AptState } from './apt-state';
import type { Snapshots } from './snapshots';
import type { Instruction } from './stratafile';
import { BuildStepError, stepEnv } from './stage-keys';
import type { StepBind } from './copy-lists';
import { StepSecret, withAptAuth } from './step-secrets';
import { OutputTail, Redactor } from './step-output';
import type { BuildContext, StageState } from './build-state';

/** Where a step sees the read-only snapshot of the store's apt state that its view links to. */
const APT_SNAPSHOT = '/run/strata/apt-snapshot';

/** What a step runs in its chroot, and what it sees there (see StepChroot.run). */
export interface ChrootOptions {
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
}

/** Runs steps' commands in their chroots, with the store's apt state and snapshots. */
export class StepChroot {
  constructor(
    private readonly ctx: BuildContext,
    private readonly snapshots: Snapshots,
    private readonly apt: AptState,
  ) {}

  /**
   * Run `command` in a chroot on the overlay of `lower` and `upper`, in the sandbox: with the
   * stage's apt sources (and the build's own packages, once DEBUILD made some), apt's
   * configuration, this step's copy of the store's apt state, and (with `context`) the build
   * context read-only, under /run/strata. `binds` adds directories there. Output goes to the
   * build's events and `log`.
   */
  async run(state: StageState, o: ChrootOptions): Promise<{ code: number; tail: OutputTail }> {
    const secrets = withAptAuth(o.secrets, o.aptIndex, this.ctx.opts.secrets);
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
}

async function mkdirIn(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}
