import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { CopyInstruction, InstallInstruction, Location } from './stratafile';
import { BuildStepError } from './stage-keys';

/**
 * What a path is in an overlay stack, from its lower dirs (topmost first): the first dir that
 * has it decides; a whiteout (a 0/0 character device) hides it.
 */
async function kindIn(
  lower: readonly string[],
  rel: string,
): Promise<'none' | 'dir' | 'link' | 'other'> {
  for (const dir of lower) {
    const st = await fsp.lstat(path.join(dir, rel)).catch(() => undefined);
    if (st === undefined) continue;
    if (st.isCharacterDevice() && st.rdev === 0) return 'none';
    if (st.isDirectory()) return 'dir';
    if (st.isSymbolicLink()) return 'link';
    return 'other';
  }
  return 'none';
}

async function readIn(lower: readonly string[], rel: string): Promise<string | undefined> {
  for (const dir of lower) {
    const p = path.join(dir, rel);
    const st = await fsp.lstat(p).catch(() => undefined);
    if (st === undefined) continue;
    if (!st.isFile()) return undefined;
    return fsp.readFile(p, 'utf8');
  }
  return undefined;
}

/** The names of a passwd or group file. */
function namesIn(text: string): Set<string> {
  return new Set(
    text
      .split('\n')
      .map((l) => l.split(':')[0] ?? '')
      .filter(Boolean),
  );
}

/**
 * A COPY that cannot succeed in the root it runs on fails before it runs, at the part of its
 * line that is wrong: a --chown user or group the template does not have, or a destination
 * under a file. The copy's shell would otherwise fail with chown's or cp's own words.
 */
export async function checkCopyTarget(
  ins: CopyInstruction,
  lower: readonly string[],
  many: boolean,
): Promise<void> {
  if (ins.chown !== undefined) {
    const [user, group] = ins.chown.split(':') as [string, string | undefined];
    const at = ins.chownLoc ?? ins.loc;
    for (const [what, name, file] of [
      ['user', user, 'etc/passwd'],
      ['group', group, 'etc/group'],
    ] as const) {
      if (name === undefined || name === '' || /^\d+$/.test(name)) continue;
      const text = await readIn(lower, file);
      if (text === undefined || !namesIn(text).has(name))
        throw new BuildStepError(at, `--chown ${what} ${name} is not in the template's /${file}`, {
          hint: `create it in an earlier step (RUN ${what === 'user' ? 'useradd' : 'groupadd'} ${name}), or give a numeric id`,
        });
    }
  }
  const dest = ins.dest.replace(/\/+$/, '');
  const parts = dest.split('/').filter(Boolean);
  // Every folder the copy goes into must be one (or not there yet); the last part is the
  // destination itself, which a single source may replace.
  const folders = many ? parts.length : parts.length - 1;
  for (let i = 1; i <= folders; i++) {
    const rel = parts.slice(0, i).join('/');
    const kind = await kindIn(lower, rel);
    if (kind === 'none') break;
    if (kind === 'other')
      throw new BuildStepError(
        ins.destLoc ?? ins.loc,
        `COPY to ${ins.dest}: /${rel} is a file in the way, not a directory`,
        { hint: 'copy to another path, or remove that file in an earlier step' },
      );
  }
}

/** The package an INSTALL's failure names (apt's "Unable to locate package x"), where it is. */
export function packageAt(ins: InstallInstruction, reason: string): Location | undefined {
  const m =
    /Unable to locate package (\S+)/.exec(reason) ??
    /Package '([^']+)' has no installation candidate/.exec(reason) ??
    /Version '[^']+' for '([^']+)' was not found/.exec(reason);
  if (!m) return undefined;
  const i = ins.packages.findIndex((p) => p.name === m[1]);
  return i < 0 ? undefined : ins.packageLocs?.[i];
}

/**
 * Why the file at `file` is not a Debian package, or undefined when it looks like one: an ar
 * archive (`!<arch>`) whose first member is `debian-binary`, as dpkg-deb requires.
 */
export async function notADeb(file: string): Promise<string | undefined> {
  const fh = await fsp.open(file, 'r').catch(() => undefined);
  if (fh === undefined) return 'it cannot be read';
  try {
    const head = Buffer.alloc(8 + 16);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < 8 || head.subarray(0, 8).toString('latin1') !== '!<arch>\n')
      return 'not an ar archive';
    const member = head.subarray(8, 24).toString('latin1').trim();
    if (member !== 'debian-binary' && member !== 'debian-binary/')
      return `its first member is ${JSON.stringify(member)}, not debian-binary`;
    return undefined;
  } finally {
    await fh.close();
  }
}

/** An INSTALL's local .debs that are not Debian packages fail at their place on the line. */
export async function checkLocalDebs(
  ins: InstallInstruction,
  debs: ReadonlyArray<{ written: string; path: string }>,
  context: string,
): Promise<void> {
  for (const d of debs) {
    const why = await notADeb(path.join(context, d.path));
    if (why === undefined) continue;
    const i = ins.debs.indexOf(d.written);
    const at = ins.debLocs[i >= 0 ? i : ins.debs.length === 1 ? 0 : -1] ?? ins.loc;
    const shown = d.written.startsWith('./') ? d.written : `./${d.written}`;
    throw new BuildStepError(at, `${shown}: not a Debian package (${why})`, {
      hint: 'INSTALL takes .deb files that dpkg-deb --build made',
    });
  }
}
