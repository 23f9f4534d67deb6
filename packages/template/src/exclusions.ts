import type { Exclusion } from '@strata/oci';
import { InvalidArgumentError } from '@strata/oci';

/** One exclusion rule: a glob over tree-relative paths (no leading `/`). */
export interface ExclusionRule {
  pattern: string;
  reason: string;
  /** 'drop' omits matching paths (a directory with its subtree); 'empty' keeps them as empty files. */
  action: 'drop' | 'empty';
  /**
   * With 'drop': a matching directory stays, and so does every directory below it; only what is
   * not a directory goes. Packages own such directories (apt's `archives/partial`,
   * `/var/log/apt`, `/etc/apt/auth.conf.d`), and the tree's dpkg database still lists them.
   */
  keepDirs?: boolean;
}

/**
 * Files that belong to the build host, not to the template. Each can be switched off by its
 * pattern with `--keep`, or all of them with `--no-default-excludes`.
 */
export const DEFAULT_EXCLUSIONS: readonly ExclusionRule[] = [
  { pattern: 'etc/apt/sources.list', reason: 'apt sources of the build host', action: 'drop' },
  { pattern: 'etc/apt/sources.list.d/*', reason: 'apt sources of the build host', action: 'drop' },
  { pattern: 'etc/apt/apt.conf.d/*proxy*', reason: 'apt proxy configuration', action: 'drop' },
  { pattern: 'etc/apt/auth.conf*', reason: 'apt credentials', action: 'drop', keepDirs: true },
  { pattern: 'etc/resolv.conf', reason: 'DNS configuration of the build host', action: 'drop' },
  { pattern: 'etc/hosts', reason: 'host table of the build host', action: 'drop' },
  { pattern: 'etc/hostname', reason: 'name of the build host', action: 'drop' },
  {
    pattern: 'var/lib/apt/lists/*',
    reason: 'apt indices, recreated by apt-get update',
    action: 'drop',
    keepDirs: true,
  },
  { pattern: 'var/cache/apt/*', reason: 'apt package cache', action: 'drop', keepDirs: true },
  {
    pattern: 'etc/ssh/ssh_host_*',
    reason: 'ssh host keys must be unique per device',
    action: 'drop',
  },
  {
    pattern: 'etc/machine-id',
    reason: 'machine id must be unique per device; kept empty as Debian expects',
    action: 'empty',
  },
  {
    pattern: 'var/lib/dbus/machine-id',
    reason: 'machine id must be unique per device',
    action: 'drop',
  },
  { pattern: 'var/log/*', reason: 'build logs', action: 'drop', keepDirs: true },
  { pattern: 'tmp/*', reason: 'temporary files', action: 'drop', keepDirs: true },
  { pattern: 'run/*', reason: 'runtime state', action: 'drop', keepDirs: true },
];

/** Normalise a user-given path or glob: no leading `/` or `./`, no trailing `/`. */
export function normalizePattern(p: string): string {
  const n = p.replace(/^(\.?\/)+/, '').replace(/\/+$/, '');
  if (n === '' || n.split('/').includes('..')) {
    throw new InvalidArgumentError(`invalid exclusion pattern ${JSON.stringify(p)}`);
  }
  return n;
}

/**
 * Compile a glob to a RegExp over a whole relative path: `*` and `?` stay inside one path
 * component, `**` crosses components, `[…]` is a character class.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let cls = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export interface ExclusionOptions {
  /** Extra globs to drop (`--exclude`). */
  exclude?: readonly string[];
  /** Default patterns to switch off (`--keep`). */
  keep?: readonly string[];
  /** Switch off every default exclusion. */
  noDefaults?: boolean;
}

/** The rules in force, and a matcher that counts what each rule matched. */
export class ExclusionSet {
  readonly rules: ExclusionRule[];
  private readonly compiled: Array<{ rule: ExclusionRule; re: RegExp; matched: number }>;
  /** Directories a keepDirs rule matched, with its entry: what is below them goes, but folders. */
  private readonly emptied = new Map<string, { matched: number }>();

  constructor(opts: ExclusionOptions = {}) {
    const keep = new Set((opts.keep ?? []).map(normalizePattern));
    const known = new Set(DEFAULT_EXCLUSIONS.map((r) => r.pattern));
    for (const k of keep) {
      if (!known.has(k)) {
        throw new InvalidArgumentError(`--keep ${k}: not a default exclusion`, {
          hint: `default exclusions: ${[...known].join(', ')}`,
        });
      }
    }
    const defaults = opts.noDefaults ? [] : DEFAULT_EXCLUSIONS.filter((r) => !keep.has(r.pattern));
    const user = (opts.exclude ?? []).map((p): ExclusionRule => ({
      pattern: normalizePattern(p),
      reason: 'excluded on request',
      action: 'drop',
    }));
    this.rules = [...defaults, ...user];
    this.compiled = this.rules.map((rule) => ({
      rule,
      re: globToRegExp(rule.pattern),
      matched: 0,
    }));
  }

  /** The first rule matching a path, counting the match. */
  match(relPath: string): ExclusionRule | undefined {
    for (const c of this.compiled) {
      if (c.re.test(relPath)) {
        c.matched++;
        return c.rule;
      }
    }
    return undefined;
  }

  /**
   * Decision for the packer's exclude hook, which visits a directory before what is in it. A
   * path's kind matters only below a directory that a keepDirs rule matched.
   */
  decide(relPath: string, kind: 'file' | 'dir' | 'other' = 'file'): 'keep' | 'drop' | 'empty' {
    for (let p = relPath; p.includes('/');) {
      p = p.slice(0, p.lastIndexOf('/'));
      const c = this.emptied.get(p);
      if (c === undefined) continue;
      if (kind === 'dir') {
        this.emptied.set(relPath, c);
        return 'keep';
      }
      c.matched++;
      return 'drop';
    }
    const c = this.compiled.find((x) => x.re.test(relPath));
    if (c === undefined) return 'keep';
    c.matched++;
    if (c.rule.keepDirs && kind === 'dir') {
      this.emptied.set(relPath, c);
      return 'keep';
    }
    return c.rule.action;
  }

  /** What was applied, for the template metadata. */
  record(): Exclusion[] {
    return this.compiled.map(({ rule, matched }) => ({
      pattern: rule.pattern,
      reason: rule.reason,
      action: rule.action,
      matched,
    }));
  }
}
