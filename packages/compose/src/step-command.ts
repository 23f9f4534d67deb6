import * as path from 'node:path';
import { InvalidArgumentError } from '@strata/oci';
import type { CopySource } from './copy-sources';
import { STRATA_TAR } from './ignore';
import { Instruction } from './stratafile';
import { shellQuote } from './stratafile/shell';

/**
 * `apt-get update`, unless the kept lists already hold the mirror state that this build's cache
 * key was made from: the engine fetched the suites' Release files for that key, and apt would
 * only fetch them again and rebuild its cache from the same indices. The engine stages that
 * state in /run/strata/apt-index (the index digest, then each Release file's sha256, one a
 * line). After an update that leaves exactly those Release files in the lists, a marker beside
 * them records the state with a hash of apt's configuration in this root (architectures, index
 * targets; not the dpkg apt runs, which the build chooses per step), so a root that wants other
 * indices updates again. A mirror that moved, a marker that
 * does not match, or lists that lost a Release file all mean an update, as before.
 */
export const APT_UPDATE = String.raw`strata_lists_hold() {
  have=" $(sha256sum /run/strata/lists/*Release 2>/dev/null | cut -d' ' -f1 | tr '
' ' ')"
  for h in $(tail -n +2 /run/strata/apt-index); do
    case "$have" in *" $h "*) ;; *) return 1 ;; esac
  done
}
strata_update() {
  want=""
  if [ -s /run/strata/apt-index ]; then
    want="$(tr '
' ' ' < /run/strata/apt-index)$(apt-config dump | grep -v '^Dir::Bin::dpkg ' | sha256sum | cut -d' ' -f1)"
  fi
  if [ -n "$want" ] && [ "$(cat /run/strata/lists/.strata-index 2>/dev/null)" = "$want" ] && strata_lists_hold; then
    echo "strata: the apt lists already hold this build's mirror state; no apt-get update"
    return 0
  fi
  rm -f /run/strata/lists/.strata-index
  apt-get update -q || return
  if [ -n "$want" ] && strata_lists_hold; then
    t=$(mktemp /run/strata/lists/.strata-index.XXXXXX) &&
      printf '%s
' "$want" > "$t" && mv "$t" /run/strata/lists/.strata-index
  fi
  return 0
}`;

/**
 * Where a COPY step finds, for its `i`th source when that is `filtered`, the NUL-separated list
 * of what to copy from it: `.` (the directory itself, as cp's `dir/.` copies its attributes), then
 * every path under it that the ignore file keeps.
 */
export const COPY_LISTS = '/run/strata/copy-lists';

/**
 * Where a COPY step finds its here-documents, each a file named by its index in the
 * instruction's `heredocs` (see heredocsBind).
 */
export const COPY_HEREDOCS = '/run/strata/heredocs';

/**
 * The command a layer step runs in its chroot: a pure function of the instruction, and for COPY
 * and an INSTALL of local .debs of what its sources resolved to in the build context (see
 * copySources).
 */
export function stepCommand(ins: Instruction, copy?: readonly CopySource[]): string[] {
  const aptPrep = 'mkdir -p /run/strata/lists/partial /run/strata/archives/partial';
  switch (ins.kind) {
    case 'INSTALL': {
      const pkgs = [
        ...ins.packages.map((p) => (p.version ? `${p.name}=${p.version}` : p.name)),
        ...(copy ?? ins.debs.map((d) => ({ path: d }))).map(
          (d) => `/run/strata/context/${d.path.replace(/^\.\//, '')}`,
        ),
      ];
      const rec = ins.recommends ? '--install-recommends' : '--no-install-recommends';
      return [
        '/bin/sh',
        '-c',
        `${APT_UPDATE}\n${aptPrep} && strata_update && apt-get install -y -q ${rec} ${pkgs.map(shellQuote).join(' ')}`,
      ];
    }
    case 'UPGRADE': {
      const upgrade = ins.packages.length
        ? `apt-get install -y -q --only-upgrade ${ins.packages.map(shellQuote).join(' ')}`
        : 'apt-get upgrade -y -q';
      return ['/bin/sh', '-c', `${APT_UPDATE}\n${aptPrep} && strata_update && ${upgrade}`];
    }
    case 'REMOVE': {
      const pkgs = ins.packages.map(shellQuote).join(' ');
      return [
        '/bin/sh',
        '-c',
        [
          `dpkg-query -L ${pkgs} 2>/dev/null | sort -u > /run/strata/out/owned`,
          `apt-get purge -y -q --autoremove ${pkgs}`,
          'rc=$?',
          'while IFS= read -r f; do if [ -e "$f" ] && [ ! -d "$f" ]; then printf "%s\\n" "$f"; fi; done < /run/strata/out/owned > /run/strata/out/survivors',
          'exit $rc',
        ].join('\n'),
      ];
    }
    case 'RUN':
      return typeof ins.command === 'string' ? ['/bin/sh', '-c', ins.command] : ins.command;
    case 'COPY': {
      const dest = ins.dest.startsWith('/') ? ins.dest : `/${ins.dest}`;
      // A symlink on the way to the destination resolves inside the root, as in Docker: the
      // step runs in the chroot, where realpath cannot leave it. A dangling one leads to the
      // directories it names, which are made (mkdir -p alone stops at the link: File exists).
      const lines = [
        'set -e',
        // A template without realpath (not Debian's: coreutils has it) keeps mkdir -p's way.
        `strata_dir() { if command -v realpath >/dev/null 2>&1; then d=$(realpath -m -- "$1"); else d=$1; fi; mkdir -p -- "$d"; printf '%s' "$d"; }`,
      ];
      const sources: readonly CopySource[] =
        copy ?? ins.sources.map((s) => ({ written: s, path: s }));
      if (sources.some((s) => s.filtered)) lines.push(STRATA_TAR);
      const docs = ins.heredocs ?? [];
      const many = sources.length + docs.length > 1 || dest.endsWith('/');
      const dir = dest.replace(/\/+$/, '') || '/';
      // A COPY --from reads the stage's tree (see FROM_TREE in run-step), else the context;
      // here-documents come after the sources from there.
      const items: Array<{ src: CopySource; from: string; heredoc?: boolean }> = [
        ...sources.map((src) => ({
          src,
          from: `/run/strata/${ins.from ? 'from' : 'context'}/${src.path.replace(/^\.\//, '')}`,
        })),
        ...docs.map((d, i) => ({
          src: { written: d.name, path: d.name },
          from: `${COPY_HEREDOCS}/${i}`,
          heredoc: true,
        })),
      ];
      for (const [i, { src, from, heredoc }] of items.entries()) {
        const to = many ? path.posix.join(dir, path.posix.basename(src.written)) : dest;
        const [parent, name] = [path.posix.dirname(to), path.posix.basename(to)];
        // A directory that the ignore file leaves something out of goes through tar, from the
        // list of what it keeps (see copyListsBind): cp cannot leave anything out.
        const list = `${COPY_LISTS}/${i}`;
        const copyDir = src.filtered
          ? `command -v tar >/dev/null 2>&1 || { echo "COPY: copying a directory that .strataignore leaves files out of needs tar in the template" >&2; exit 1; }; strata_tar ${shellQuote(from)} ${list} "$t"`
          : `cp -a ${shellQuote(from)}/. "$t"/`;
        lines.push(
          heredoc
            ? `t=$(strata_dir ${shellQuote(parent)})/${shellQuote(name)}; cp -a ${shellQuote(from)} "$t"`
            : `if [ -d ${shellQuote(from)} ]; then t=$(strata_dir ${shellQuote(many ? dir : to)}); ${copyDir}; else t=$(strata_dir ${shellQuote(parent)})/${shellQuote(name)}; cp -a ${shellQuote(from)} "$t"; fi`,
        );
        // A here-document's file is root's, as BuildKit makes it, whoever wrote it on the host.
        if (heredoc && !ins.chown) lines.push('chown 0:0 "$t"');
        else if (ins.chown?.includes(':')) lines.push(`chown -R ${shellQuote(ins.chown)} "$t"`);
        else if (ins.chown) {
          // A user without a group: the group is the user's numeric id, as Docker does.
          const u = shellQuote(ins.chown);
          // A user the template lacks leaves g empty: chown then says so itself.
          lines.push(
            `case ${u} in *[!0-9]*) g=$(id -u -- ${u} 2>/dev/null || true) ;; *) g=${u} ;; esac`,
            `chown -R ${u}\${g:+:"$g"} "$t"`,
          );
        }
        if (ins.chmod !== undefined) lines.push(`chmod -R ${ins.chmod.toString(8)} "$t"`);
      }
      return ['/bin/sh', '-c', lines.join('\n')];
    }
    default:
      throw new InvalidArgumentError(`${ins.kind} does not run`);
  }
}
