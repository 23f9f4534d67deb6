/**
 * What a DEBUILD source's cache key is made of, read from the build context: shared by the build
 * and by `strata check`, which recomputes the key.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { Digest } from '@strata/oci';
import { parseDeb822 } from '@strata/debian';
import { cacheKey, hashContextPaths } from './cache';
import { BuildStepError, StageKeys, StepScope, stepEnv } from './stage-keys';
import { CopySource, leftOut } from './copy-sources';
import { ContextIgnore, leavesOutUnder } from './ignore';
import type { DebuildInstruction } from './stratafile';

/** What a DEBUILD source's cache key is made of, besides the build context and the apt state. */
export interface DebuildKeyParts {
  scope: StepScope;
  ins: DebuildInstruction;
  source: string;
  /** Chain ID of the buildchroot it builds in. */
  buildchroot: Digest;
  /** The Debian architecture it builds for. */
  target: string;
  /** Blob digests of the build's own packages among its Build-Depends, sorted. */
  inputs: Digest[];
}

/**
 * The cache key of one DEBUILD source, as the build computes it and `strata check` recomputes
 * it: the source's content, the buildchroot, the architecture and profiles, and the apt state
 * the Build-Depends resolve from.
 */
export async function debuildKey(
  keys: StageKeys,
  context: string,
  p: DebuildKeyParts,
): Promise<Digest> {
  const sources = await keys.sourcesFor(p.scope);
  const index = await keys.releasesOf(sources);
  const profiles = p.ins.profiles.length ? ` --profiles=${p.ins.profiles.join(',')}` : '';
  return cacheKey({
    parent: p.buildchroot,
    instruction: `DEBUILD${profiles} ${p.source}`,
    env: stepEnv(p.scope),
    aptSources: sources.digest,
    ...(index ? { aptIndex: index.digest } : {}),
    inputs: [await sourceDigestOf(context, p.ins, p.source, keys.contextIgnore()), ...p.inputs],
    architecture: p.target,
    keeps: 'source',
  });
}

/** debian/control of a source tree, or the .dsc, whose first stanza names the source. */
export function controlTextOf(context: string, source: string): Promise<string> {
  const file = source.endsWith('.dsc')
    ? path.join(context, source)
    : path.join(context, source, 'debian', 'control');
  return fsp.readFile(file, 'utf8').then(unsigned, () => '');
}

/** The content digest of a source tree, or of a .dsc with the files it lists. */
/**
 * What a DEBUILD of the source tree `source` reads from the context: the tree (marked `filtered`
 * when `ignore` leaves something in it out) and the upstream tarballs beside it that `ignore`
 * keeps. A tree that `ignore` leaves out is an error of the DEBUILD line.
 */
export async function debuildTreeInputs(
  context: string,
  ins: DebuildInstruction,
  source: string,
  ignore: ContextIgnore | undefined,
): Promise<{ tree: CopySource; origs: string[] }> {
  if (ignore !== undefined && leftOut(path.resolve(context), source, source, ignore))
    throw excluded(ins, source, ignore);
  // A 3.0 (quilt) tree builds from the upstream tarballs beside it as well.
  const parent = path.posix.dirname(source);
  const origs = (await fsp.readdir(path.join(context, parent)))
    .filter((n) => /\.orig(-[A-Za-z0-9-]+)?\.tar\./.test(n))
    .map((n) => path.posix.join(parent, n))
    .filter((f) => ignore === undefined || !ignore.ignores(f))
    .sort();
  const tree: CopySource = { written: source, path: source };
  if (ignore !== undefined && leavesOutUnder(context, source, ignore)) tree.filtered = true;
  return { tree, origs };
}

function excluded(ins: DebuildInstruction, file: string, ignore: ContextIgnore): BuildStepError {
  return new BuildStepError(
    ins.loc,
    `DEBUILD ${file}: not in the build context: ${ignore.file} excludes it`,
    { hint: `add a line !${file.replace(/^(\.\/)+/, '')} to ${ignore.file}` },
  );
}

async function sourceDigestOf(
  context: string,
  ins: DebuildInstruction,
  source: string,
  ignore: ContextIgnore | undefined,
): Promise<Digest> {
  if (!source.endsWith('.dsc')) {
    const st = await fsp.stat(path.join(context, source)).catch(() => undefined);
    if (!st?.isDirectory())
      throw new BuildStepError(
        ins.loc,
        `DEBUILD ${source}: no such directory in the build context`,
      );
    const control = path.join(context, source, 'debian', 'control');
    if (!(await fsp.stat(control).catch(() => undefined)))
      throw new BuildStepError(ins.loc, `DEBUILD ${source}: no debian/control in it`, {
        hint: 'DEBUILD takes a source tree holding debian/, or a .dsc',
      });
    const { tree, origs } = await debuildTreeInputs(context, ins, source, ignore);
    return hashContextPaths(context, [tree, ...origs], ignore);
  }
  const dsc = await fsp.readFile(path.join(context, source), 'utf8').catch(() => {
    throw new BuildStepError(ins.loc, `DEBUILD ${source}: no such file in the build context`);
  });
  const files = (parseDeb822(unsigned(dsc))[0]?.get('files') ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[2])
    .filter((f): f is string => !!f)
    .map((f) => path.posix.join(path.posix.dirname(source), f));
  // dpkg-source reads them all: none may be left out.
  for (const f of [source, ...files])
    if (ignore?.ignores(f)) throw excluded(ins, f.startsWith('.') ? f : `./${f}`, ignore);
  return hashContextPaths(context, [source, ...files]);
}

/** The package names a source's Build-Depends (all three fields) mention, alternatives included. */
export function buildDependsOf(control: string): string[] {
  const first = parseDeb822(control)[0] ?? new Map<string, string>();
  const names = new Set<string>();
  for (const field of ['build-depends', 'build-depends-arch', 'build-depends-indep']) {
    for (const alt of (first.get(field) ?? '').split(/[,|]/)) {
      const name = /^\s*([a-z0-9][a-z0-9+.-]*)/.exec(alt)?.[1];
      if (name) names.add(name);
    }
  }
  return [...names].sort();
}

/** The text of a clearsigned file (a .dsc), without the OpenPGP armour around it. */
function unsigned(text: string): string {
  const m =
    /^-----BEGIN PGP SIGNED MESSAGE-----\n(?:[^\n]+\n)*\n([\s\S]*?)\n-----BEGIN PGP SIGNATURE-----/.exec(
      text,
    );
  return m?.[1] ?? text;
}
