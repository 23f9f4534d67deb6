/**
 * `.strataignore`: the build context's files that no step reads, with `.dockerignore`'s rules
 * (moby's patternmatcher), so that a `COPY .` leaves out `.git` and build outputs and its cache
 * key does not change when they do.
 */
import * as fs from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import * as path from 'node:path';
import { ParseError } from '@strata/oci';
import { componentRegExp, matchComponent } from './copy-sources';

export const IGNORE_FILE = '.strataignore';

interface IgnorePattern {
  /** The pattern as cleaned, without its `!`. */
  text: string;
  /** A `!` pattern: it re-includes what it matches. */
  exception: boolean;
  re: RegExp;
}

/** A path as the patterns see it: cleaned, relative to the context, '' for its root. */
function contextRel(rel: string): string {
  const c = clean(rel).replace(/^\/+/, '');
  return c === '.' ? '' : c;
}

/** Go's filepath.Clean of a slash-separated path. */
function clean(p: string): string {
  if (p === '') return '.';
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/**
 * The regular expression of a cleaned pattern: each component a Go filepath.Match glob (`*`,
 * `?`, `[...]`, `\` escapes; none crosses a `/`), and a `**` component any number of directories
 * (none too). Undefined for a malformed pattern.
 */
function patternRegExp(pattern: string): RegExp | undefined {
  const parts = pattern.split('/');
  let out = '';
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const last = i === parts.length - 1;
    if (part === '**') {
      out += last ? '.*' : '(?:.*/)?';
      continue;
    }
    const re = componentRegExp(part);
    if (re === undefined) return undefined;
    out += re.source.slice(1, -1) + (last ? '' : '/');
  }
  return new RegExp(`^${out}$`, 'u');
}

/**
 * Files of the context that the build writes: those in directory `dir` (relative to the context,
 * '' for its root) whose names `name` matches.
 */
export interface ContextOutputs {
  dir: string;
  name: RegExp;
}

/** The patterns of an ignore file, which says which paths of the build context no step sees. */
export class ContextIgnore {
  private constructor(
    /** The file the patterns came from, for messages. */
    readonly file: string,
    private readonly patterns: readonly IgnorePattern[],
    /**
     * Files of the context that the build itself writes (its lock files): left out whatever
     * the patterns say, as an output that is also an input would change every build's key.
     */
    private readonly outputs: readonly ContextOutputs[] = [],
  ) {}

  /** The same patterns, with `outputs` left out too. */
  withOutputs(outputs: readonly ContextOutputs[]): ContextIgnore {
    return new ContextIgnore(this.file, this.patterns, [...this.outputs, ...outputs]);
  }

  /** Is `rel` a file the build writes (see `outputs`)? */
  isOutput(rel: string): boolean {
    const file = contextRel(rel);
    const slash = file.lastIndexOf('/');
    const dir = slash < 0 ? '' : file.slice(0, slash);
    const name = file.slice(slash + 1);
    return this.outputs.some((o) => o.dir === dir && o.name.test(name));
  }

  /**
   * With no patterns, what is left out is only the files the build writes: the directories
   * (relative to the context) they are in. Undefined when there are patterns.
   */
  get onlyOutputsIn(): readonly string[] | undefined {
    return this.patterns.length === 0 ? this.outputs.map((o) => o.dir) : undefined;
  }

  /**
   * The patterns of `text` (read from `file`), as `.dockerignore` has them: one a line, `#`
   * lines and blank ones skipped, each cleaned and relative to the context (a leading `/`
   * dropped), `!` making an exception. A malformed one is a ParseError at its line.
   */
  static parse(text: string, file: string): ContextIgnore {
    const patterns: IgnorePattern[] = [];
    text
      .replace(/^\uFEFF/, '')
      .split('\n')
      .forEach((raw, i) => {
        if (raw.startsWith('#')) return;
        let p = raw.trim();
        if (p === '') return;
        const exception = p.startsWith('!');
        if (exception) p = p.slice(1).trim();
        const column = raw.indexOf(raw.trimStart()) + 1;
        if (p === '') throw new ParseError(file, i + 1, column, 'a "!" needs a pattern after it');
        p = clean(p);
        if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
        const re = patternRegExp(p);
        if (re === undefined)
          throw new ParseError(
            file,
            i + 1,
            column,
            `bad pattern ${JSON.stringify(raw.trim())}: an unclosed "[" or a "\\" at its end`,
          );
        patterns.push({ text: p, exception, re });
      });
    return new ContextIgnore(file, patterns);
  }

  /** Are there no patterns at all, and no outputs? */
  get empty(): boolean {
    return this.patterns.length === 0 && this.outputs.length === 0;
  }

  /**
   * Is `rel` (relative to the context, `/`-separated) left out? The last pattern that matches it
   * or one of its parent directories decides, as moby's MatchesOrParentMatches: a directory left
   * out leaves out what is under it, unless a later `!` matches that.
   */
  ignores(rel: string): boolean {
    const file = contextRel(rel);
    if (file === '') return false;
    if (this.isOutput(file)) return true;
    const parts = file.split('/');
    let matched = false;
    for (const p of this.patterns) {
      // An exclusion cannot change a path already left out, nor an exception one kept.
      if (p.exception !== matched) continue;
      let match = p.re.test(file);
      for (let i = 1; !match && i < parts.length; i++)
        match = p.re.test(parts.slice(0, i).join('/'));
      if (match) matched = !p.exception;
    }
    return matched;
  }

  /**
   * Can an exception re-include something under directory `dir`, which is left out? Only then
   * is a left-out directory walked at all.
   */
  mayKeepUnder(dir: string): boolean {
    const parts = contextRel(dir).split('/');
    return this.patterns.some((p) => {
      if (!p.exception) return false;
      const pat = p.text.split('/');
      for (let i = 0; i < parts.length; i++) {
        const c = pat[i];
        if (c === undefined) return false;
        if (c.includes('**')) return true;
        if (!matchComponent(c, parts[i] as string)) return false;
      }
      return pat.length > parts.length;
    });
  }
}

/**
 * The lock files a build of `stratafile` writes (`Stratafile.lock`, and a platform's
 * `Stratafile.<arch>.lock`), in the Stratafile's directory; none when the Stratafile is outside
 * the context.
 */
function lockFilesIn(context: string, stratafile: string): ContextOutputs[] {
  const dir = path.relative(path.resolve(context), path.dirname(path.resolve(stratafile)));
  if (dir === '..' || dir.startsWith(`..${path.sep}`) || path.isAbsolute(dir)) return [];
  const name = path.basename(stratafile).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return [
    {
      dir: dir.split(path.sep).join('/'),
      name: new RegExp(`^${name}(?:\\.[^/.]+)?\\.lock$`, 'u'),
    },
  ];
}

/**
 * The ignore file of a build: `<Stratafile>.strataignore` beside the Stratafile when there is
 * one, else `.strataignore` at the root of the context; undefined when there is neither (or it
 * has no patterns) and the build writes no lock file into the context. It is read even when its
 * own patterns leave it out, as docker does. The build's lock files are always left out: the
 * build writes them after its steps, so a `COPY .` that read one would never be a cache hit.
 */
export function loadContextIgnore(
  context: string,
  stratafile: string | undefined,
): ContextIgnore | undefined {
  const outputs = stratafile !== undefined ? lockFilesIn(context, stratafile) : [];
  const candidates = [
    ...(stratafile !== undefined ? [`${stratafile}${IGNORE_FILE}`] : []),
    path.join(context, IGNORE_FILE),
  ];
  let ignore = ContextIgnore.parse('', '(no ignore file)');
  for (const file of candidates) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    ignore = ContextIgnore.parse(text, shown(file));
    break;
  }
  ignore = ignore.withOutputs(outputs);
  return ignore.empty ? undefined : ignore;
}

/** `file` as a message shows it: relative to the working directory when it is under it. */
function shown(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/**
 * What is kept under directory `dir` (relative to `root`, '' for the root), depth first, each
 * directory before its contents and names sorted: paths relative to `dir`. A left-out directory
 * is walked only when an exception may keep something in it, and is itself kept when something
 * in it is, so that what is kept keeps its parents' owners and modes.
 */
export function* keptUnder(
  root: string,
  dir: string,
  ignore: ContextIgnore,
): Generator<string, void, undefined> {
  const walk = function* (rel: string, prefix: string): Generator<string, void, undefined> {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(root, rel));
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const childOut = prefix === '' ? name : `${prefix}/${name}`;
      const isDir = fs.lstatSync(path.join(root, childRel)).isDirectory();
      if (!ignore.ignores(childRel)) {
        yield childOut;
        if (isDir) yield* walk(childRel, childOut);
        continue;
      }
      if (!isDir || !ignore.mayKeepUnder(childRel)) continue;
      const inner = [...walk(childRel, childOut)];
      if (inner.length === 0) continue;
      yield childOut;
      yield* inner;
    }
  };
  yield* walk(contextRel(dir), '');
}

/** Does the ignore leave out anything under directory `dir` (relative to `root`)? */
export function leavesOutUnder(root: string, dir: string, ignore: ContextIgnore): boolean {
  // Without patterns only the build's own files are left out, each in a known directory: those
  // directories answer, where the walk would read every directory of a large tree.
  const outputDirs = ignore.onlyOutputsIn;
  if (outputDirs !== undefined)
    return outputDirs.some((out) => holdsOutput(root, contextRel(dir), out, ignore));
  const walk = (rel: string): boolean => {
    let names: string[];
    try {
      names = fs.readdirSync(path.join(root, rel));
    } catch {
      return false;
    }
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (ignore.ignores(childRel)) return true;
      if (fs.lstatSync(path.join(root, childRel)).isDirectory() && walk(childRel)) return true;
    }
    return false;
  };
  return walk(contextRel(dir));
}

/**
 * Does directory `out` (relative to `root`) hold a file the build writes, as the walk of
 * leavesOutUnder from directory `top` would find it? The walk reads `top` itself wherever it
 * leads, but goes into directories only, not symlinks to them.
 */
function holdsOutput(root: string, top: string, out: string, ignore: ContextIgnore): boolean {
  if (top !== '' && out !== top && !out.startsWith(`${top}/`)) return false;
  const below = out === top ? [] : out.slice(top === '' ? 0 : top.length + 1).split('/');
  try {
    let at = top;
    for (const part of below) {
      at = at === '' ? part : `${at}/${part}`;
      if (!fs.lstatSync(path.join(root, at)).isDirectory()) return false;
    }
    return fs
      .readdirSync(path.join(root, out))
      .some((name) => ignore.isOutput(out === '' ? name : `${out}/${name}`));
  } catch {
    return false;
  }
}

/**
 * Write to `file` the NUL-separated list of what a step copies from directory `dir` of the
 * context `root`: `.` (the directory itself), then what `ignore` keeps under it (keptUnder),
 * as the walk finds it, for `tar --null --no-recursion -T`.
 */
export async function writeKeptList(
  file: string,
  root: string,
  dir: string,
  ignore: ContextIgnore,
): Promise<void> {
  const out = fs.createWriteStream(file);
  const done = finished(out);
  out.write('.\0');
  for (const kept of keptUnder(root, dir, ignore))
    if (!out.write(`${kept}\0`)) await once(out, 'drain');
  out.end();
  await done;
}

/**
 * A shell function, `strata_tar FROM LIST TO`, that copies with tar what the NUL-separated `LIST`
 * names from directory `FROM` into `TO` (see writeKeptList), streaming. It fails when either tar
 * does: a file that cannot be read makes `tar -c` fail with a whole archive, which `tar -x` would
 * take.
 */
export const STRATA_TAR = `strata_tar() { r=$( { { tar -C "$1" --null --no-recursion -T "$2" -cf - || echo failed >&3; } | tar -C "$3" -xpf -; } 3>&1 ) && [ -z "$r" ]; }`;
