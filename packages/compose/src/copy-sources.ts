/**
 * COPY sources in the build context: globs expanded and symlinks followed without leaving it,
 * so that the cache key and the copy read the same files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCode, StrataError } from '@strata/oci';
import { ContextIgnore, keptUnder, leavesOutUnder } from './ignore';

/** One file or directory a COPY reads. */
export interface CopySource {
  /** The source as written, or for a glob, the path it matched. Its last component names the copy. */
  written: string;
  /**
   * Where it is, relative to the build context, with every symlink on the way resolved inside
   * the context. Equal to `written` when no symlink was followed, so such keys stay as they were.
   */
  path: string;
  /**
   * A directory in which the build's `.strataignore` leaves something out: it is copied from the
   * list of what is kept (see keptUnder), not whole.
   */
  filtered?: boolean;
}

/** A COPY source that cannot be read; `index` is the source's position on the line. */
export class CopySourceError extends StrataError {
  constructor(
    readonly index: number,
    code: ErrorCode,
    message: string,
    options?: { hint?: string },
  ) {
    super(code, message, options);
  }
}

/** Go's filepath.Match specials, which docker's COPY honours; a `\` escapes the next one. */
export function isGlob(pattern: string): boolean {
  return /[*?[]/.test(pattern);
}

/**
 * Does `name` (one path component) match `pattern` as Go's filepath.Match has it? `*` is any run
 * of characters and `?` any one, `[a-z]`, `[^a]` classes; none of them matches `/`.
 */
export function matchComponent(pattern: string, name: string): boolean {
  const re = componentRegExp(pattern);
  return re !== undefined && re.test(name);
}

/** The regular expression of one component's glob, undefined when it is malformed. */
export function componentRegExp(pattern: string): RegExp | undefined {
  let out = '';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i] as string;
    if (c === '\\') {
      const next = chars[++i];
      if (next === undefined) return undefined;
      out += escapeRe(next);
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      let j = i + 1;
      let cls = '';
      if (chars[j] === '^') {
        cls += '^';
        j++;
      }
      let first = true;
      for (; j < chars.length && (first || chars[j] !== ']'); j++) {
        first = false;
        let ch = chars[j] as string;
        if (ch === '\\') {
          const next = chars[++j];
          if (next === undefined) return undefined;
          ch = next;
        }
        cls +=
          ch === '-' && cls !== '' && cls !== '^'
            ? '-'
            : /[\\^$.*+?()[\]{}|/-]/.test(ch)
              ? `\\${ch}`
              : ch;
      }
      if (j >= chars.length) return undefined; // no closing ]: Go's ErrBadPattern
      out += `[${cls}]`;
      i = j;
    } else out += escapeRe(c);
  }
  try {
    return new RegExp(`^${out}$`, 'u');
  } catch {
    return undefined;
  }
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

function components(rel: string): string[] {
  return rel.split('/').filter((p) => p !== '' && p !== '.');
}

const MAX_LINKS = 40;

/**
 * `rel` inside `root` with each symlink resolved as the kernel would, but inside `root`: a link
 * to an absolute path or a `..` that leaves it is an error. The last component is followed too.
 * Returns the resolved path relative to `root` ('' for the root itself) and whether a link was
 * followed, or undefined when something on the way does not exist.
 */
function resolveInside(
  root: string,
  rel: string,
  index: number,
  glob?: string,
  tree?: string,
): { path: string; followed: boolean } | undefined {
  const done: string[] = [];
  const todo = components(rel);
  let links = 0;
  let followed = false;
  while (todo.length > 0) {
    const part = todo.shift() as string;
    if (part === '..') {
      // In a stage's tree, as in a chroot, `..` of the root is the root.
      if (done.length === 0 && tree !== undefined) continue;
      if (done.length === 0)
        throw new CopySourceError(index, 'INVALID_ARGUMENT', `${rel} escapes the build context`);
      done.pop();
      continue;
    }
    const here = [...done, part];
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(root, ...here));
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) {
      if (todo.length > 0 && !st.isDirectory()) return undefined;
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS)
      throw new CopySourceError(index, 'INVALID_ARGUMENT', `${rel}: too many levels of symlinks`);
    followed = true;
    const target = fs.readlinkSync(path.join(root, ...here));
    const escapes = () =>
      new CopySourceError(
        index,
        'INVALID_ARGUMENT',
        `${rel}${glob === undefined ? '' : ` (matched by ${glob})`} escapes the build context: ${here.join('/')} is a symlink to ${target}`,
        {
          // Docker's rule: a source is followed, a symlink inside a copied directory is not.
          hint:
            glob === undefined
              ? 'a build reads only its context; copy the file into it'
              : 'what a glob matches is a source, and a symlink there is followed as a named one is; only a symlink inside a copied directory (COPY . or COPY dir/) is copied as a symlink',
        },
      );
    if (tree !== undefined) {
      // A stage's links name paths of its own tree, never the host's: an absolute one starts
      // again from its root, and a `..` above the root stays there.
      if (path.posix.isAbsolute(target)) done.length = 0;
      todo.unshift(...components(target));
      continue;
    }
    if (path.isAbsolute(target)) {
      // A link by the host's absolute path to a place inside the context is still inside.
      const inside = path.relative(root, target);
      if (inside.startsWith('..') || path.isAbsolute(inside)) throw escapes();
      done.length = 0;
      todo.unshift(...components(inside.split(path.sep).join('/')));
      continue;
    }
    const parts = components(target);
    // Walk the target's `..` now, so the message names the link that leaves the context.
    let up = 0;
    for (const p of parts) {
      if (p === '..') up++;
      else break;
    }
    if (up > done.length) throw escapes();
    todo.unshift(...parts);
  }
  return { path: done.join('/'), followed };
}

/** The paths under `root` that `pattern` matches, component by component, sorted. */
function expand(root: string, pattern: string, index: number, tree?: string): string[] {
  let found: string[] = [''];
  for (const part of components(pattern)) {
    const next: string[] = [];
    for (const dir of found) {
      if (!isGlob(part)) {
        next.push(dir === '' ? part : `${dir}/${part}`);
        continue;
      }
      const real = resolveInside(root, dir, index, undefined, tree);
      if (real === undefined) continue;
      let names: string[];
      try {
        names = fs.readdirSync(path.join(root, real.path));
      } catch {
        continue; // not a directory
      }
      for (const name of names.sort())
        if (matchComponent(part, name)) next.push(dir === '' ? name : `${dir}/${name}`);
    }
    found = next;
  }
  return found.filter((p) => p !== '');
}

/**
 * Is the source at `rel` (resolved to `real`) left out by `ignore`? A left-out directory in
 * which an exception keeps something is not: docker's context holds that much of it.
 */
export function leftOut(root: string, rel: string, real: string, ignore: ContextIgnore): boolean {
  const out = ignore.ignores(rel) ? rel : ignore.ignores(real) ? real : undefined;
  if (out === undefined) return false;
  let st: fs.Stats;
  try {
    st = fs.statSync(path.join(root, real));
  } catch {
    return true;
  }
  if (!st.isDirectory() || !ignore.mayKeepUnder(out)) return true;
  return keptUnder(root, real, ignore).next().done === true;
}

/**
 * The files and directories that COPY `sources` read in `context`, in order: each glob's matches
 * sorted (Go's filepath.Match, as docker's COPY), every path resolved inside the context. A
 * source that is missing, a glob that matches nothing, and a symlink that leads out of the
 * context are `CopySourceError`s naming the source.
 *
 * With `tree` (`COPY --from`), `context` is a stage's whole result tree, which `tree` names in
 * errors: sources are absolute paths in it, and symlinks resolve as in a chroot of it. With
 * `ignore` (the build context's `.strataignore`), what it leaves out is not in the context: a
 * glob does not match it, and naming it is an error that says why.
 */
export function copySources(
  context: string,
  sources: readonly string[],
  opts: { tree?: string; ignore?: ContextIgnore } = {},
): CopySource[] {
  const { tree, ignore } = opts;
  const root = path.resolve(context);
  const out: CopySource[] = [];
  const where = tree ?? 'the build context';
  sources.forEach((src, index) => {
    const glob = isGlob(src);
    if (glob && src.split('/').some((p) => p !== '' && componentRegExp(p) === undefined))
      throw new CopySourceError(index, 'INVALID_ARGUMENT', `${src}: bad glob pattern`);
    let found = 0;
    let excluded = 0;
    for (const w of glob ? expand(root, src, index, tree) : [src]) {
      const real = resolveInside(root, w, index, glob ? src : undefined, tree);
      // A glob's candidate that is not there is no match (Go's Glob checks each with lstat).
      if (real === undefined && glob) continue;
      if (real === undefined)
        throw new CopySourceError(
          index,
          'NOT_FOUND',
          tree === undefined
            ? `${w} is not in the build context`
            : `${w}: no such file in ${where}`,
        );
      if (ignore !== undefined && leftOut(root, w, real.path, ignore)) {
        if (!glob && ignore.isOutput(w))
          throw new CopySourceError(
            index,
            'NOT_FOUND',
            `${w} is not in the build context: it is the build's lock file, which the build writes`,
          );
        if (!glob)
          throw new CopySourceError(
            index,
            'NOT_FOUND',
            `${w} is not in the build context: ${ignore.file} excludes it`,
            { hint: `add a line !${w.replace(/^(\.\/)+/, '')} to ${ignore.file} to copy it` },
          );
        if (!ignore.isOutput(w)) excluded++;
        continue;
      }
      const written = tree !== undefined && !w.startsWith('/') ? `/${w}` : w;
      // In a tree every source is given by its resolved path: a written one is absolute.
      const at = tree !== undefined ? real.path || '.' : real.followed ? real.path || '.' : w;
      const source: CopySource = { written, path: at };
      if (ignore !== undefined && fs.statSync(path.join(root, real.path)).isDirectory())
        if (leavesOutUnder(root, real.path, ignore)) source.filtered = true;
      out.push(source);
      found++;
    }
    if (found === 0)
      throw new CopySourceError(
        index,
        'NOT_FOUND',
        `${src} matches nothing in ${where}${excluded > 0 ? ` (${ignore?.file ?? ''} excludes what it matches)` : ''}`,
      );
  });
  return out;
}
