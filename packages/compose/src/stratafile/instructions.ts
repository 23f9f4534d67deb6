/**
 * Each instruction that needs no knowledge of other stages, from its arguments to its syntax-tree
 * node with canonical text. The parser handles FROM, ARG and BUILDCHROOT itself.
 */
import { posix } from 'node:path';
import type { Instruction, InstallInstruction, Location, SecretMount } from './ast';
import { Ctx, FLAGS, Flag } from './arguments';
import { Lexer, Lookup, SPLIT_WORDS, WORDS, quoteWord, scanJsonArray } from './lexer';
import { debianArchitectureFor } from '@strata/debian';
import { parseCopy } from './copy-instruction';
import { heredocCommand } from './heredoc';
import { trimLine } from './lines';
import {
  ARCHITECTURE,
  COMPONENT,
  FEATURE_NAME,
  OCTAL_MODE,
  PACKAGE_NAME,
  PACKAGE_VERSION,
  SUITE,
  VARIANTS,
  VAR_NAME,
  checkPackageName,
  contextPath,
  isUrl,
  keyValue,
  splitVersion,
} from './values';

/**
 * The index of the earlier stage a `COPY --from` names; throws the flag's error for a stage that
 * is not an earlier one of this Stratafile.
 */
export type StageLookup = (flag: Flag) => number;

/** Parse one step of a stage (any instruction but FROM, ARG and BUILDCHROOT). */
export function parseStep(ctx: Ctx, lookup: Lookup, stageOf?: StageLookup): Instruction {
  const lx = ctx.lx;
  const loc = ctx.loc;
  switch (ctx.kw) {
    case 'BOOTSTRAP': {
      const flags = ctx.flags(FLAGS.BOOTSTRAP ?? {});
      const [suite, extra] = ctx.positional(WORDS);
      if (suite === undefined)
        throw ctx.missing('BOOTSTRAP requires a suite, e.g. BOOTSTRAP bookworm');
      if (extra !== undefined)
        throw lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
      if (!SUITE.test(suite.value))
        throw lx.error(suite.start, `invalid suite ${JSON.stringify(suite.value)}`);
      const variant = flags.get('variant');
      if (variant && !VARIANTS.includes(variant.value ?? '')) {
        throw lx.error(
          variant.at,
          `unknown mmdebstrap variant ${JSON.stringify(variant.value)}`,
          `variants: ${VARIANTS.join(', ')}`,
        );
      }
      const include = ctx.list(flags.get('include'), (p) => {
        const [name, version] = splitVersion(p);
        return PACKAGE_NAME.test(name) && (version === undefined || PACKAGE_VERSION.test(version));
      });
      const components = ctx.list(flags.get('components'), (c) => COMPONENT.test(c));
      const mirror = flags.get('mirror');
      if (mirror && !isUrl(mirror.value ?? '')) {
        throw lx.error(mirror.at, `--mirror must be a URL, got ${JSON.stringify(mirror.value)}`);
      }
      const arch = flags.get('architecture');
      if (arch) checkArchitecture(lx, arch);
      return {
        kind: 'BOOTSTRAP',
        suite: suite.value,
        ...(variant?.value !== undefined ? { variant: variant.value } : {}),
        include,
        components,
        ...(mirror?.value !== undefined ? { mirror: mirror.value } : {}),
        ...(arch?.value !== undefined ? { architecture: arch.value } : {}),
        loc,
        text: ctx.canonical([quoteWord(suite.value)]),
      };
    }
    case 'INSTALL': {
      const flags = ctx.flags(FLAGS.INSTALL ?? {});
      const words = ctx.positional(SPLIT_WORDS);
      if (words.length === 0) {
        throw ctx.missing('INSTALL requires at least one package or ./file.deb');
      }
      const packages: InstallInstruction['packages'] = [];
      const debs: string[] = [];
      const debLocs: Location[] = [];
      const packageLocs: Location[] = [];
      const shown: string[] = [];
      for (const w of words) {
        if (w.value.includes('/') || w.value.endsWith('.deb')) {
          if (!w.value.endsWith('.deb')) {
            throw lx.error(w.start, `local package ${JSON.stringify(w.value)} must be a .deb file`);
          }
          const deb = `./${contextPath(lx, w, 'local package')}`;
          debs.push(deb);
          debLocs.push(lx.loc(w.start));
          shown.push(quoteWord(deb));
        } else {
          const [name, version] = splitVersion(w.value);
          checkPackageName(lx, w, name);
          if (version !== undefined && !PACKAGE_VERSION.test(version)) {
            throw lx.error(
              w.start,
              `invalid version ${JSON.stringify(version)} for package ${name}`,
            );
          }
          packages.push(version === undefined ? { name } : { name, version });
          packageLocs.push(lx.loc(w.start));
          shown.push(quoteWord(w.value));
        }
      }
      return {
        kind: 'INSTALL',
        packages,
        debs,
        debLocs,
        packageLocs,
        recommends: flags.has('recommends'),
        loc,
        text: ctx.canonical(shown),
      };
    }
    case 'REMOVE':
    case 'UPGRADE': {
      const flags = ctx.flags(FLAGS[ctx.kw] ?? {});
      const words = ctx.positional(SPLIT_WORDS);
      if (ctx.kw === 'REMOVE' && words.length === 0)
        throw ctx.missing('REMOVE requires at least one package');
      const packages = words.map((w) => {
        if (w.value.includes('=')) {
          throw lx.error(
            w.start,
            `${ctx.kw} takes package names without versions, got ${JSON.stringify(w.value)}`,
          );
        }
        checkPackageName(lx, w, w.value);
        return w.value;
      });
      const text = ctx.canonical(packages);
      return ctx.kw === 'REMOVE'
        ? { kind: 'REMOVE', packages, strict: flags.has('strict-remove'), loc, text }
        : { kind: 'UPGRADE', packages, loc, text };
    }
    case 'RUN': {
      ctx.flags(FLAGS.RUN ?? {});
      const mounts = ctx.all('mount').map((f) => secretMount(lx, f));
      for (const [i, m] of mounts.entries()) {
        const twin = mounts.findIndex((o) => o.target === m.target);
        if (twin !== i)
          throw lx.error(
            (ctx.all('mount')[i] as Flag).at,
            `two --mount flags have the target ${m.target}`,
          );
      }
      mounts.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
      const rest = lx.text.slice(ctx.next).trim();
      if (rest === '') throw ctx.missing('RUN requires a command');
      // The mounts say which secrets the step saw, never their values: that is all the step's
      // text (its history entry and cache key) holds of them.
      const head = ctx.canonical([]);
      const script = heredocCommand(lx, rest);
      if (script !== undefined) {
        return {
          kind: 'RUN',
          command: script.command,
          mounts,
          loc,
          text: `${head} ${script.text}`,
        };
      }
      const json = scanJsonArray(lx.text, ctx.next);
      if (json !== null) {
        if (json.length === 0) throw lx.error(ctx.next, 'RUN [] needs at least the program to run');
        const command = json.map((e) => e.value);
        return { kind: 'RUN', command, mounts, loc, text: `${head} ${JSON.stringify(command)}` };
      }
      return { kind: 'RUN', command: rest, mounts, loc, text: `${head} ${rest}` };
    }
    case 'COPY':
      return parseCopy(ctx, lookup, stageOf);
    case 'ENV': {
      ctx.flags({});
      const first = lx.scan(ctx.next, WORDS);
      const head = first.words[0];
      if (head === undefined) throw ctx.missing('ENV requires <key>=<value>');
      const vars: Array<[string, string]> = [];
      if (!head.raw.includes('=')) {
        // Legacy `ENV key value…`: the rest of the line is one value.
        if (!VAR_NAME.test(head.value)) {
          throw lx.error(head.start, `invalid ENV name ${JSON.stringify(head.value)}`);
        }
        const valueStart = lx.skipBlanks(first.end);
        const trimmed = new Lexer(lx.file, trimLine(lx.line), lookup);
        if (valueStart >= trimmed.text.length) {
          throw lx.error(head.start, `ENV ${head.value} needs a value: ENV ${head.value}=<value>`);
        }
        const value =
          trimmed.scan(valueStart, { split: false, whole: true, plain: false }).words[0]?.value ??
          '';
        vars.push([head.value, value]);
      } else {
        for (const w of ctx.positional(WORDS)) vars.push(keyValue(lx, w, 'ENV', true));
      }
      return {
        kind: 'ENV',
        vars,
        loc,
        text: `ENV ${vars.map(([k, v]) => `${k}=${quoteWord(v)}`).join(' ')}`,
      };
    }
    case 'LABEL': {
      ctx.flags({});
      const words = ctx.positional(WORDS);
      if (words.length === 0) throw ctx.missing('LABEL requires <key>=<value>');
      const labels = words.map((w) => keyValue(lx, w, 'LABEL', false));
      return {
        kind: 'LABEL',
        labels,
        loc,
        text: `LABEL ${labels.map(([k, v]) => `${quoteWord(k)}=${quoteWord(v)}`).join(' ')}`,
      };
    }
    case 'FEATURE': {
      ctx.flags({});
      const words = ctx.positional(SPLIT_WORDS);
      if (words.length === 0) throw ctx.missing('FEATURE requires at least one feature name');
      for (const w of words) {
        if (!FEATURE_NAME.test(w.value))
          throw lx.error(w.start, `invalid feature name ${JSON.stringify(w.value)}`);
      }
      const features = words.map((w) => w.value);
      return { kind: 'FEATURE', features, loc, text: ctx.canonical(features) };
    }
    case 'EXCLUDE': {
      ctx.flags({});
      const words = ctx.positional(SPLIT_WORDS);
      if (words.length === 0) throw ctx.missing('EXCLUDE requires at least one glob');
      for (const w of words) {
        const stripped = w.value.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
        // A pattern made only of `*` and `**` components (`*`, `**`, `/**`, `*/**`) matches
        // every top-level entry, which would empty every layer of the stage as surely as `/`.
        if (stripped === '' || stripped.split('/').every((c) => c === '*' || c === '**'))
          throw lx.error(
            w.start,
            `EXCLUDE pattern ${JSON.stringify(w.value)} names the whole tree`,
          );
        if (stripped.split('/').includes('..')) {
          throw lx.error(
            w.start,
            `EXCLUDE pattern ${JSON.stringify(w.value)} must not contain ".."`,
          );
        }
      }
      const globs = words.map((w) => w.value);
      return { kind: 'EXCLUDE', globs, loc, text: ctx.canonical(globs.map(quoteWord)) };
    }
    case 'SOURCES': {
      ctx.flags({});
      const [w, extra] = ctx.positional(WORDS);
      if (w === undefined) throw ctx.missing('SOURCES requires a file from the build context');
      if (extra !== undefined)
        throw lx.error(extra.start, `unexpected argument ${quoteWord(extra.raw)}`);
      contextPath(lx, w, 'SOURCES file');
      return { kind: 'SOURCES', file: w.value, loc, text: ctx.canonical([quoteWord(w.value)]) };
    }
    case 'DEBUILD': {
      const flags = ctx.flags(FLAGS.DEBUILD ?? {});
      const words = ctx.positional(WORDS);
      if (words.length === 0)
        throw ctx.missing(
          'DEBUILD requires a source tree with a debian/ directory, or a .dsc, from the build context',
        );
      const sources = words.map(
        (w) => `./${contextPath(lx, w, 'DEBUILD source').replace(/\/+$/, '')}`,
      );
      const arch = flags.get('arch');
      if (arch) checkArchitecture(lx, arch);
      const profiles = ctx.list(flags.get('profiles'), (p) => /^[a-z0-9][a-z0-9.+-]*$/.test(p));
      profiles.sort();
      return {
        kind: 'DEBUILD',
        sources,
        ...(arch?.value !== undefined ? { arch: arch.value } : {}),
        profiles,
        loc,
        text: ctx.canonical(sources.map(quoteWord)),
      };
    }
    default:
      // FROM, ARG and BUILDCHROOT are handled by the parser.
      throw lx.error(0, `unexpected ${ctx.kw}`);
  }
}

/** A secret's id, as BuildKit takes them. */
export const SECRET_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Where no secret may go: the root's kernel filesystems, and what the sandbox mounts itself. */
const RESERVED_TARGETS = ['/proc', '/sys', '/dev', '/run/strata'];

/** An architecture flag's value is a Debian architecture name, not uname's or docker's. */
function checkArchitecture(lx: Lexer, flag: Flag): void {
  const value = flag.value ?? '';
  const meant = debianArchitectureFor(value);
  if (meant !== undefined)
    throw lx.error(flag.at, `${value} is not a Debian architecture; did you mean ${meant}?`);
  if (!ARCHITECTURE.test(value))
    throw lx.error(flag.at, `invalid architecture ${JSON.stringify(value)}`);
}

/**
 * `--mount=type=secret,id=NAME[,target=PATH][,required[=true|false]][,mode=0400]` (BuildKit's
 * syntax; `dst` and `destination` stand for `target`, and the id defaults to the target's file
 * name). The flag's value is rewritten to its canonical form.
 */
function secretMount(lx: Lexer, flag: Flag): SecretMount {
  const fields = new Map<string, string | undefined>();
  for (const item of (flag.value ?? '').split(',')) {
    const eq = item.indexOf('=');
    const key = (eq < 0 ? item : item.slice(0, eq)).toLowerCase();
    const name = key === 'dst' || key === 'destination' ? 'target' : key;
    if (!['type', 'id', 'target', 'required', 'mode'].includes(name))
      throw lx.error(
        flag.at,
        `unknown --mount option ${JSON.stringify(key)}`,
        'a secret mount takes type=secret, id, target, required and mode',
      );
    if (fields.has(name)) throw lx.error(flag.at, `--mount gives ${name} twice`);
    fields.set(name, eq < 0 ? undefined : item.slice(eq + 1));
  }
  const type = fields.get('type');
  if (type !== 'secret')
    throw lx.error(
      flag.at,
      type === undefined
        ? '--mount needs type=secret'
        : `--mount type=${type} is not supported: only type=secret`,
    );
  const rawTarget = fields.get('target');
  if (rawTarget !== undefined && !rawTarget.startsWith('/'))
    throw lx.error(flag.at, `--mount target ${JSON.stringify(rawTarget)} must be an absolute path`);
  const id = fields.get('id') ?? (rawTarget !== undefined ? posix.basename(rawTarget) : undefined);
  if (id === undefined || id === '') throw lx.error(flag.at, '--mount type=secret needs an id');
  if (!SECRET_ID.test(id)) throw lx.error(flag.at, `invalid secret id ${JSON.stringify(id)}`);
  const target = posix.normalize(rawTarget ?? `/run/secrets/${id}`).replace(/\/+$/, '');
  if (target === '' || target === '/')
    throw lx.error(flag.at, '--mount target must name a file, not the root');
  if (RESERVED_TARGETS.some((r) => target === r || target.startsWith(`${r}/`)))
    throw lx.error(flag.at, `--mount target ${target} is reserved`);
  const req = fields.get('required');
  if (req !== undefined && req !== 'true' && req !== 'false')
    throw lx.error(flag.at, `--mount required=${req}: expected true or false`);
  const required = fields.has('required') && req !== 'false';
  const modeText = fields.get('mode');
  if (modeText !== undefined && !OCTAL_MODE.test(modeText))
    throw lx.error(flag.at, `--mount mode=${modeText}: expected an octal mode like 0400`);
  const mode = modeText === undefined ? 0o400 : parseInt(modeText, 8);
  flag.value = [
    'type=secret',
    `id=${id}`,
    ...(target !== `/run/secrets/${id}` ? [`target=${target}`] : []),
    ...(required ? ['required=true'] : []),
    ...(mode !== 0o400 ? [`mode=${mode.toString(8).padStart(4, '0')}`] : []),
  ].join(',');
  return { type: 'secret', id, target, required, mode };
}
