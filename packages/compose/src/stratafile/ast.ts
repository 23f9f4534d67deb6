/**
 * The Stratafile's syntax tree: one type per instruction, the stages they form and the file as a
 * whole. Pure data; the parser builds it and the engine reads it.
 */

/** A position in a Stratafile: 1-based line and column (columns count Unicode code points). */
export interface Location {
  file: string;
  line: number;
  column: number;
}

interface Base {
  /** Where the instruction keyword is. */
  loc: Location;
  /** Canonical one-line form after substitution: single spaces, flags sorted, words quoted only when needed. */
  text: string;
}

/** What a FROM reference names, decided by the parser so the engine need not guess. */
export type FromRefKind =
  /** `scratch`: an empty tree, to be filled by BOOTSTRAP. */
  | 'scratch'
  /** An earlier stage of this Stratafile (`ref` is its name). */
  | 'stage'
  /** A template file: `./x.tmpl.img`, `../x.tar`, `/abs/x.tmpl.img`. */
  | 'file'
  /** A tag in the local store (`name[:tag][@digest]`, no registry host). */
  | 'local'
  /** A registry reference (`host[:port]/repo[:tag][@sha256:…]`). */
  | 'registry';

export interface FromInstruction extends Base {
  kind: 'FROM';
  /** The reference after substitution with global ARGs. */
  ref: string;
  refKind: FromRefKind;
  /** The stage name given with `AS`, if any. */
  stage?: string;
}

export interface BootstrapInstruction extends Base {
  kind: 'BOOTSTRAP';
  /** Debian suite or codename, e.g. `bookworm`. */
  suite: string;
  /** mmdebstrap `--variant`. */
  variant?: string;
  /** Extra packages for mmdebstrap `--include`. */
  include: string[];
  /** Archive components, e.g. `main`, `contrib`. */
  components: string[];
  mirror?: string;
  architecture?: string;
}

export interface InstallInstruction extends Base {
  kind: 'INSTALL';
  /** Packages from the apt sources, with an optional pinned version. `name` may carry `:arch`. */
  packages: Array<{ name: string; version?: string }>;
  /** Local .deb files (or globs of them), normalised and relative to the build context, always starting with `./`. */
  debs: string[];
  /** Where each of `debs` is on the line. */
  debLocs: Location[];
  /** Where each of `packages` is on the line, for errors about one. */
  packageLocs?: Location[];
  /** `--recommends`: install Recommends too (the default is `--no-install-recommends`). */
  recommends: boolean;
}

export interface RemoveInstruction extends Base {
  kind: 'REMOVE';
  packages: string[];
  /** `--strict-remove`: files the removed packages owned that survive are an error, not a report. */
  strict: boolean;
}

export interface UpgradeInstruction extends Base {
  kind: 'UPGRADE';
  /** Packages to upgrade; empty means every installed package. */
  packages: string[];
}

/**
 * `RUN --mount=type=secret,…`: a secret given to the build (`strata build --secret`) that the step
 * sees as a read-only file on a tmpfs, and that never reaches its layer, key or output.
 */
export interface SecretMount {
  type: 'secret';
  /** The secret's name, as `--secret id=…` gives it. */
  id: string;
  /** Absolute path of the file inside the root (default `/run/secrets/<id>`). */
  target: string;
  /** A missing secret fails the step (by default the step runs without the file, as BuildKit's). */
  required: boolean;
  /** Mode bits of the file (default 0400). */
  mode: number;
}

export interface RunInstruction extends Base {
  kind: 'RUN';
  /** Exec form (`RUN ["exe","arg"]`) as an array; shell form as the verbatim command string. */
  command: string[] | string;
  /** `--mount=type=secret,…` flags, sorted by target. */
  mounts: SecretMount[];
}

/** `COPY --from=<stage>`: the earlier stage whose result tree a COPY reads instead of the context. */
export interface CopyFrom {
  /** The stage as written: its name, or its index in the file (`--from=0`). */
  ref: string;
  /** The stage's 0-based index in the file; always an earlier stage than the COPY's. */
  index: number;
  /** Where the `--from` flag is on the line. */
  loc: Location;
}

/** `COPY <<WORD`: a file written from the lines that follow the instruction, as in BuildKit. */
export interface CopyHeredoc {
  /** Its delimiter word: the file's name in a directory destination. */
  name: string;
  /** The file's text: its lines, each ending in a newline, substituted unless WORD was quoted. */
  content: string;
  /** Where its `<<` marker is on the line. */
  loc: Location;
}

export interface CopyInstruction extends Base {
  kind: 'COPY';
  /**
   * Sources relative to the build context, as written (after substitution); may be globs. With
   * `from`, absolute paths in that stage's tree, normalised. Here-documents are not among them.
   */
  sources: string[];
  /** Here-documents among the sources, in the order of their markers; absent when none. */
  heredocs?: CopyHeredoc[];
  /** Where each source is on the line, for errors about it. */
  sourceLocs: Location[];
  /** Absolute destination in the tree, normalised; a trailing `/` is kept. */
  dest: string;
  /** Where the destination is on the line. */
  destLoc?: Location;
  /** `user[:group]`, names or numeric ids. */
  chown?: string;
  /** Where the `--chown` flag is on the line. */
  chownLoc?: Location;
  /** Mode bits from `--chmod=<octal>`. */
  chmod?: number;
  /** `--from=<stage>`: the sources are in that stage's result, not the build context. */
  from?: CopyFrom;
}

export interface EnvInstruction extends Base {
  kind: 'ENV';
  vars: Array<[string, string]>;
}

export interface ArgInstruction extends Base {
  kind: 'ARG';
  name: string;
  /** The declared default, after substitution. */
  default?: string;
  /**
   * The value in effect: the `--build-arg`, else the default, else (inside a stage) the value of
   * the global ARG of the same name. Undefined when the ARG is unset.
   */
  value?: string;
}

export interface LabelInstruction extends Base {
  kind: 'LABEL';
  labels: Array<[string, string]>;
}

export interface FeatureInstruction extends Base {
  kind: 'FEATURE';
  features: string[];
}

export interface ExcludeInstruction extends Base {
  kind: 'EXCLUDE';
  /** Globs over paths in the tree, as written. */
  globs: string[];
}

export interface SourcesInstruction extends Base {
  kind: 'SOURCES';
  /** An apt sources file (one-line or deb822) relative to the build context, as written. */
  file: string;
}

export interface DebuildInstruction extends Base {
  kind: 'DEBUILD';
  /**
   * Debian source packages, relative to the build context with a leading `./`: a source tree
   * holding `debian/`, or a `.dsc` (read with the files it lists). Built in this order.
   */
  sources: string[];
  /** `--arch`: the Debian architecture to build for (default: the stage's). */
  arch?: string;
  /** `--profiles`: build profiles (DEB_BUILD_PROFILES), sorted. */
  profiles: string[];
}

export interface BuildchrootInstruction extends Base {
  kind: 'BUILDCHROOT';
  /** Name of an earlier stage. */
  stage: string;
}

export type Instruction =
  | FromInstruction
  | BootstrapInstruction
  | InstallInstruction
  | RemoveInstruction
  | UpgradeInstruction
  | RunInstruction
  | CopyInstruction
  | EnvInstruction
  | ArgInstruction
  | LabelInstruction
  | FeatureInstruction
  | ExcludeInstruction
  | SourcesInstruction
  | DebuildInstruction
  | BuildchrootInstruction;

export type InstructionKind = Instruction['kind'];

export interface Stage {
  /** 0-based position in the file. */
  index: number;
  name?: string;
  from: FromInstruction;
  /** Everything after FROM, in order (ARGs included: the engine exports them to RUN). */
  steps: Instruction[];
}

export interface Stratafile {
  file: string;
  /** ARGs before the first FROM; they are visible to FROM lines only. */
  globalArgs: ArgInstruction[];
  stages: Stage[];
  /** Build args given by the caller that no ARG declares, sorted (Docker warns about these). */
  unusedBuildArgs: string[];
}

/** The instructions that change the tree, each into one layer. */
export const LAYER_INSTRUCTIONS = [
  'BOOTSTRAP',
  'INSTALL',
  'REMOVE',
  'UPGRADE',
  'RUN',
  'COPY',
] as const satisfies readonly InstructionKind[];

/** Every instruction keyword, upper-case. */
export const INSTRUCTIONS: readonly InstructionKind[] = [
  'FROM',
  ...LAYER_INSTRUCTIONS,
  'ENV',
  'ARG',
  'LABEL',
  'FEATURE',
  'EXCLUDE',
  'SOURCES',
  'DEBUILD',
  'BUILDCHROOT',
];
