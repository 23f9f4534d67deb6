/**
 * The Stratafile parser. A Stratafile is Dockerfile-like: one instruction per logical line,
 * `#` comment lines, `\\` continuations, shell-like quoting and `$VAR` substitution. The parser
 * resolves every variable it is allowed to (everything except RUN, which the shell expands), checks
 * the structure (stages, BOOTSTRAP placement, stage references) and gives each instruction a
 * canonical one-line `text` for cache keys and OCI history. It reads no files and runs nothing.
 * See docs/stratafile.md for the user-facing reference.
 */
import { isStrataError, ParseError, parseReference } from '@strata/oci';
import {
  ArgInstruction,
  FromInstruction,
  FromRefKind,
  INSTRUCTIONS,
  Instruction,
  InstructionKind,
  Location,
  Stage,
  Stratafile,
} from './ast';
import { Ctx, Flag } from './arguments';
import { parseStep } from './instructions';
import { Lexer, Lookup, WORDS, quoteWord } from './lexer';
import { LogicalLine, isBlank, logicalLines } from './lines';
import { AUTOMATIC_ARGS, STAGE_NAME, VAR_NAME } from './values';

export interface ParseOptions {
  /**
   * The environment a stage's FROM template brings (its image config's `Env`), by stage index;
   * undefined for a stage whose base is not known. Substitution in the stage sees it under its
   * own ARGs and ENVs, as docker's does. A stage FROM an earlier stage inherits that one's.
   */
  baseEnv?: (stageIndex: number) => ReadonlyMap<string, string> | undefined;
  /**
   * The FROM templates are not resolved yet (a syntax check before a build fetches them): in a
   * stage FROM a template, an instruction that substitutes a variable the Stratafile does not
   * define may be completed by the template's ENV, so an error in it is not reported.
   */
  unresolvedBases?: boolean;
}

/**
 * Parse a Stratafile. `file` is used in locations and error messages only. `buildArgs`
 * (`--build-arg`) override ARG defaults. Throws `ParseError` (`file:line:column: message`) at the
 * first problem, in file order.
 */
export function parseStratafile(
  text: string,
  file: string,
  buildArgs: Record<string, string> = {},
  opts: ParseOptions = {},
): Stratafile {
  return new Parser(file, buildArgs, opts, false).parse(text);
}

/** A stage as its FROM line gives it, before its instructions are read. */
export type StageHead = Omit<Stage, 'steps'>;

/**
 * The stages of a Stratafile from their FROM lines (and the global ARGs they see) alone: what a
 * build must resolve before the stages' instructions can be substituted (see `baseEnv`). Throws
 * `ParseError` for those lines; the rest of the file is checked by `parseStratafile`.
 */
export function parseStageHeads(
  text: string,
  file: string,
  buildArgs: Record<string, string> = {},
): StageHead[] {
  return new Parser(file, buildArgs, {}, true).parse(text).stages.map(({ index, name, from }) => ({
    index,
    ...(name !== undefined ? { name } : {}),
    from,
  }));
}

interface StageState {
  stage: Stage;
  /** Position of the FROM reference, for "FROM scratch must be followed by BOOTSTRAP". */
  refLoc: Location;
  scratch: boolean;
  bootstrapped: boolean;
  buildchroot?: Location;
  args: Map<string, string | undefined>;
  env: Map<string, string>;
  /** The stage's template ENV is not known (see ParseOptions.unresolvedBases). */
  envUnknown: boolean;
}

interface DeclaredStage {
  name: string;
  index: number;
  line: number;
}

/** What to write instead of a Dockerfile instruction a Stratafile does not have. */
const DOCKERFILE_ONLY: Record<string, string> = {
  ADD: 'use COPY for files from the build context',
  WORKDIR:
    'a template has no working directory, and RUN starts in /: cd in the command (RUN cd /opt/app && make)',
  USER: 'steps run as root, and a template has no default user: RUN useradd to make one, COPY --chown to give it files',
  CMD: "a template is a root filesystem, not a container: what it starts is its init system's (RUN systemctl enable …)",
  ENTRYPOINT:
    "a template is a root filesystem, not a container: what it starts is its init system's (RUN systemctl enable …)",
  EXPOSE: 'a template is a root filesystem, not a container: it has no runtime settings',
  VOLUME: 'a template is a root filesystem, not a container: it has no runtime settings',
  HEALTHCHECK: 'a template is a root filesystem, not a container: it has no runtime settings',
  STOPSIGNAL: 'a template is a root filesystem, not a container: it has no runtime settings',
  SHELL: 'RUN uses /bin/sh -c; for another shell, use the JSON form: RUN ["bash", "-c", "…"]',
  ONBUILD: 'there are no triggers: write the steps into the Stratafile that builds FROM this one',
  MAINTAINER: 'use LABEL org.opencontainers.image.authors=…',
};

class Parser {
  private readonly stages: StageState[] = [];
  private readonly globalArgs: ArgInstruction[] = [];
  private readonly globalValues = new Map<string, string | undefined>();
  private readonly consumed = new Set<string>();
  private declared: DeclaredStage[] = [];
  private cur: StageState | undefined;

  constructor(
    private readonly file: string,
    private readonly buildArgs: Record<string, string>,
    private readonly opts: ParseOptions,
    /** Read only global ARGs and FROM lines. */
    private readonly headsOnly: boolean,
  ) {}

  parse(source: string): Stratafile {
    const lines = logicalLines(source);
    this.declared = prescanStageNames(lines);
    lines.forEach((line, index) => this.instruction(line, index));
    this.endStage();
    if (this.stages.length === 0) {
      throw new ParseError(
        this.file,
        1,
        1,
        'no FROM instruction: a Stratafile needs at least one stage',
      );
    }
    return {
      file: this.file,
      globalArgs: this.globalArgs,
      stages: this.stages.map((s) => s.stage),
      unusedBuildArgs: Object.keys(this.buildArgs)
        .filter((k) => !this.consumed.has(k))
        .sort(),
    };
  }

  /** The instruction being read substituted a variable its template's ENV might have set. */
  private missedUnknown = false;

  private lookup: Lookup = (name) => {
    if (this.cur === undefined) return this.globalValues.get(name);
    const value = this.cur.env.has(name) ? this.cur.env.get(name) : this.cur.args.get(name);
    if (value === undefined && this.cur.envUnknown) this.missedUnknown = true;
    return value;
  };

  private instruction(line: LogicalLine, index: number): void {
    const lx = new Lexer(this.file, line, this.lookup);
    const t = line.text;
    let kwEnd = 0;
    while (kwEnd < t.length && !isBlank(t.charAt(kwEnd))) kwEnd++;
    const word = t.slice(0, kwEnd);
    const kw = word.toUpperCase() as InstructionKind;
    // Before the first FROM every line is read even for the heads: what is there besides ARG is
    // that line's error, not a Stratafile without a FROM.
    if (this.headsOnly && this.cur !== undefined && kw !== 'FROM') return;
    if (!INSTRUCTIONS.includes(kw)) {
      throw lx.error(
        0,
        `unknown instruction ${JSON.stringify(word)}`,
        DOCKERFILE_ONLY[word.toUpperCase()] ?? `instructions: ${INSTRUCTIONS.join(', ')}`,
      );
    }
    const cur = this.cur;
    if (cur === undefined && kw !== 'FROM' && kw !== 'ARG') {
      throw lx.error(0, `${kw} before the first FROM: only ARG may come before FROM`);
    }
    if (
      cur?.scratch &&
      !cur.bootstrapped &&
      !['ARG', 'SOURCES', 'BOOTSTRAP', 'FROM'].includes(kw)
    ) {
      throw lx.error(
        0,
        `a FROM scratch stage must start with BOOTSTRAP (FROM scratch at line ${cur.refLoc.line})`,
      );
    }
    if (kw === 'BOOTSTRAP' && !(cur?.scratch && !cur.bootstrapped)) {
      throw lx.error(0, 'BOOTSTRAP is only allowed directly after FROM scratch');
    }
    const ctx = new Ctx(lx, kw, lx.skipBlanks(kwEnd));
    if (kw === 'FROM') {
      this.from(ctx, index);
      return;
    }
    if (kw === 'ARG') {
      this.arg(ctx);
      return;
    }
    if (cur === undefined) return; // unreachable: checked above
    this.missedUnknown = false;
    let step: Instruction;
    try {
      step =
        ctx.kw === 'BUILDCHROOT'
          ? this.buildchroot(ctx, cur)
          : parseStep(ctx, this.lookup, (flag) => this.copyFrom(ctx, cur, flag));
    } catch (e) {
      if (this.missedUnknown && e instanceof ParseError) return;
      throw e;
    }
    cur.stage.steps.push(step);
    if (step.kind === 'ENV') for (const [k, v] of step.vars) cur.env.set(k, v);
    if (step.kind === 'BOOTSTRAP') cur.bootstrapped = true;
  }

  private endStage(): void {
    const cur = this.cur;
    if (this.headsOnly) return;
    if (cur?.scratch && !cur.bootstrapped) {
      throw new ParseError(
        cur.refLoc.file,
        cur.refLoc.line,
        cur.refLoc.column,
        'FROM scratch must be followed by BOOTSTRAP',
      );
    }
  }

  /**
   * Of a FROM reference that came out invalid, the variables it substituted with nothing, for
   * its message: `base:${TARGETARCH}` is `base:` when no ARG declares TARGETARCH.
   */
  private emptyVars(raw: string): string {
    const names = [
      ...raw.matchAll(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))/g),
    ]
      .map((m) => (m[1] ?? m[2]) as string)
      .filter((n, i, all) => all.indexOf(n) === i && !this.globalValues.get(n));
    return names
      .map((n) =>
        this.globalValues.has(n)
          ? `: \${${n}} is empty (give it a default, ARG ${n}=…, or pass --build-arg ${n}=…)`
          : `: \${${n}} is empty (declare ARG ${n} before the first FROM${AUTOMATIC_ARGS.has(n) ? '' : `, and pass --build-arg ${n}=…`})`,
      )
      .join('');
  }

  private from(ctx: Ctx, index: number): void {
    this.endStage();
    this.cur = undefined; // FROM sees global ARGs only
    ctx.flags({});
    const words = ctx.positional(WORDS);
    const [refWord, asWord, nameWord, extra] = words;
    if (refWord === undefined) throw ctx.missing('FROM requires a template reference');
    if (extra !== undefined)
      throw ctx.lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
    if (asWord !== undefined && asWord.value.toUpperCase() !== 'AS') {
      throw ctx.lx.error(
        asWord.start,
        `expected "AS <stage>" after the reference, got ${quoteWord(asWord.raw)}`,
      );
    }
    if (asWord !== undefined && nameWord === undefined) {
      throw ctx.lx.error(asWord.start, 'AS needs a stage name');
    }
    const ref = refWord.value;
    const refAt = refWord.start;
    if (ref === '') throw ctx.lx.error(refAt, 'FROM reference is empty (is the ARG set?)');

    let name: string | undefined;
    if (nameWord !== undefined) {
      name = nameWord.raw;
      if (!STAGE_NAME.test(name)) {
        throw ctx.lx.error(
          nameWord.start,
          name.toLowerCase() !== name && STAGE_NAME.test(name.toLowerCase())
            ? `stage name ${JSON.stringify(name)} must be lowercase`
            : `invalid stage name ${JSON.stringify(name)}: use a lowercase letter, then [a-z0-9_.-]`,
        );
      }
      if (name === 'scratch')
        throw ctx.lx.error(nameWord.start, '"scratch" is reserved and cannot name a stage');
      const dup = this.stages.find((s) => s.stage.name === name);
      if (dup) {
        throw ctx.lx.error(
          nameWord.start,
          `duplicate stage name ${JSON.stringify(name)} (first defined at line ${dup.stage.from.loc.line})`,
        );
      }
    }

    let refKind: FromRefKind;
    let parent: StageState | undefined;
    if (ref === 'scratch') {
      refKind = 'scratch';
    } else if (/^(\.\.?)?\//.test(ref)) {
      if (!/\.(tmpl\.img|tar)$/.test(ref)) {
        throw ctx.lx.error(
          refAt,
          `template file ${JSON.stringify(ref)} must end in .tmpl.img or .tar`,
        );
      }
      refKind = 'file';
    } else if ((parent = this.stages.find((s) => s.stage.name === ref))) {
      refKind = 'stage';
    } else {
      const later = this.declared.find((d) => d.name === ref && d.index >= index);
      if (later) {
        throw ctx.lx.error(
          refAt,
          later.index === index
            ? `stage ${JSON.stringify(ref)} cannot start FROM itself`
            : `FROM ${ref} refers to stage ${JSON.stringify(ref)}, which is defined later (line ${later.line}); a stage can only start FROM an earlier stage`,
        );
      }
      try {
        refKind = parseReference(ref).registry === undefined ? 'local' : 'registry';
      } catch (e) {
        if (isStrataError(e)) throw ctx.lx.error(refAt, e.message + this.emptyVars(refWord.raw));
        throw e;
      }
    }

    const from: FromInstruction = {
      kind: 'FROM',
      ref,
      refKind,
      ...(name !== undefined ? { stage: name } : {}),
      loc: ctx.loc,
      text: `FROM ${quoteWord(ref)}${name !== undefined ? ` AS ${name}` : ''}`,
    };
    const state: StageState = {
      stage: {
        index: this.stages.length,
        ...(name !== undefined ? { name } : {}),
        from,
        steps: [],
      },
      refLoc: ctx.lx.loc(refAt),
      scratch: refKind === 'scratch',
      bootstrapped: false,
      args: new Map(),
      envUnknown: parent
        ? parent.envUnknown
        : refKind !== 'scratch' && this.opts.unresolvedBases === true,
      env: new Map(
        parent?.env ??
          (refKind === 'scratch' ? undefined : this.opts.baseEnv?.(this.stages.length)) ??
          [],
      ),
    };
    this.stages.push(state);
    this.cur = state;
  }

  private arg(ctx: Ctx): void {
    ctx.flags({});
    const words = ctx.positional(WORDS);
    const [w, extra] = words;
    if (w === undefined) throw ctx.missing('ARG requires a name: ARG <name>[=<default>]');
    if (extra !== undefined) {
      throw ctx.lx.error(
        extra.start,
        'ARG takes a single <name>[=<default>]; use one ARG per variable',
      );
    }
    const eq = w.raw.indexOf('=');
    const name = eq < 0 ? w.raw : w.raw.slice(0, eq);
    if (!VAR_NAME.test(name))
      throw ctx.lx.error(w.start, `invalid ARG name ${JSON.stringify(name)}`);
    const def = eq < 0 ? undefined : w.value.slice(name.length + 1);
    let value: string | undefined;
    if (Object.prototype.hasOwnProperty.call(this.buildArgs, name)) {
      value = this.buildArgs[name];
      this.consumed.add(name);
    } else if (def !== undefined) {
      value = def;
    } else if (this.cur !== undefined) {
      value = this.globalValues.get(name);
    }
    const inst: ArgInstruction = {
      kind: 'ARG',
      name,
      ...(def !== undefined ? { default: def } : {}),
      ...(value !== undefined ? { value } : {}),
      loc: ctx.loc,
      text: def === undefined ? `ARG ${name}` : `ARG ${name}=${quoteWord(def)}`,
    };
    if (this.cur === undefined) {
      this.globalArgs.push(inst);
      this.globalValues.set(name, value);
    } else {
      this.cur.args.set(name, value);
      this.cur.stage.steps.push(inst);
    }
  }

  /**
   * The earlier stage `COPY --from=<flag>` names: by its AS name, or by its index in the file as
   * docker takes `--from=0`. A later stage, the stage itself, or a template reference (which
   * docker would pull) is the flag's error.
   */
  private copyFrom(ctx: Ctx, cur: StageState, flag: Flag): number {
    const lx = ctx.lx;
    const ref = flag.value ?? '';
    const here = cur.stage.index;
    if (/^\d+$/.test(ref)) {
      const i = Number(ref);
      if (i < here) return i;
      throw lx.error(
        flag.at,
        i === here
          ? `COPY --from=${ref} names this stage itself; a stage can only copy from an earlier one`
          : `COPY --from=${ref}: stage ${ref} is not an earlier stage (this is stage ${here}); a stage can only copy from an earlier one`,
      );
    }
    const earlier = this.stages.find((s) => s !== cur && s.stage.name === ref);
    if (earlier) return earlier.stage.index;
    if (cur.stage.name === ref)
      throw lx.error(
        flag.at,
        `COPY --from=${ref} names this stage itself; a stage can only copy from an earlier one`,
      );
    const later = this.declared.find((d) => d.name === ref);
    if (later)
      throw lx.error(
        flag.at,
        `COPY --from=${ref} refers to stage ${JSON.stringify(ref)}, which is defined later (line ${later.line}); a stage can only copy from an earlier stage`,
      );
    throw lx.error(
      flag.at,
      `COPY --from=${ref}: no stage named ${JSON.stringify(ref)}`,
      `--from takes an earlier stage of this Stratafile, by name or index; to copy from a template, start a stage with FROM ${ref} AS <name> and COPY --from=<name>`,
    );
  }

  private buildchroot(ctx: Ctx, cur: StageState): Instruction {
    const lx = ctx.lx;
    const loc = ctx.loc;
    ctx.flags({});
    const [w, extra] = ctx.positional(WORDS);
    if (w === undefined) throw ctx.missing('BUILDCHROOT requires the name of an earlier stage');
    if (extra !== undefined)
      throw lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
    if (cur.buildchroot) {
      throw lx.error(
        0,
        `duplicate BUILDCHROOT in this stage (first at line ${cur.buildchroot.line})`,
      );
    }
    const name = w.value;
    const earlier = this.stages.find((s) => s !== cur && s.stage.name === name);
    if (!earlier) {
      const later = this.declared.find((d) => d.name === name);
      throw lx.error(
        w.start,
        cur.stage.name === name
          ? 'a stage cannot be its own buildchroot'
          : this.declared.some((d) => d.name === name)
            ? `BUILDCHROOT ${name}: stage ${JSON.stringify(name)} is defined later${later ? ` (line ${later.line})` : ''}; name an earlier stage`
            : `BUILDCHROOT ${name}: no stage named ${JSON.stringify(name)}`,
      );
    }
    cur.buildchroot = loc;
    return { kind: 'BUILDCHROOT', stage: name, loc, text: `BUILDCHROOT ${name}` };
  }
}

/** Names declared with `FROM … AS name`, read before parsing so forward references are recognised. */
function prescanStageNames(lines: LogicalLine[]): DeclaredStage[] {
  const out: DeclaredStage[] = [];
  lines.forEach((line, index) => {
    const words = line.text.trim().split(/[ \t]+/);
    if (words.length >= 3 && words[0]?.toUpperCase() === 'FROM') {
      const asAt = words.findIndex((w, i) => i > 0 && w.toUpperCase() === 'AS');
      const name = asAt > 0 ? words[asAt + 1] : undefined;
      if (name !== undefined) out.push({ name, index, line: line.pos[0]?.line ?? 1 });
    }
  });
  return out;
}
