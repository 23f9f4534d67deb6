import * as path from 'node:path';
import type { DebianPackage } from '@strata/oci';
import {
  EmulatorMissingError,
  NativeDpkg,
  kitRefusal,
  nativeDpkg,
  requireBootstrapEmulation,
  requireEmulation,
} from '@strata/tools';
import { aptStateDir } from './apt-state';
import type { Instruction } from './stratafile';
import { BuildStepError, stepArchitecture } from './stage-keys';
import type { BuildContext, StageState } from './build-state';

/**
 * What a build needs to run steps of another architecture: the check that qemu-user can run
 * them, and the host's dpkg that unpacks their packages natively (set up once per build).
 */
export class Emulation {
  /** The host's dpkg for foreign roots, set up by the first apt step that runs emulated. */
  private kit?: Promise<NativeDpkg | undefined>;

  constructor(private readonly ctx: BuildContext) {}

  /**
   * A step of a foreign template runs under qemu-user: check, before anything starts, that this
   * host can do that, so that the build fails on the step's line with the fix instead of with an
   * "Exec format error" from inside the chroot (or mmdebstrap's own complaint). True when the
   * step runs emulated.
   */
  async require(state: StageState, ins: Instruction): Promise<boolean> {
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
    this.kit ??= nativeDpkg(path.join(aptStateDir(this.ctx.store.root), 'native')).catch(
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
}
