import * as path from 'node:path';
import type { Argv } from 'yargs';
import type { ContentSource, Selector } from '@strata/oci';
import type { DiffReport, DiffSide, FileInfo } from '@strata/imager';
import type { Context, GlobalArgs } from '../context';
import type { Runner } from '../main';
import { tlsOptions } from './registry';
import {
  counted,
  shownPath,
  ExitCodeError,
  exitCodeFor,
  formatBytes,
  numberCheck,
  platformOption,
} from '../output';

interface DiffArgs extends GlobalArgs {
  a: string;
  b: string;
  platform?: string;
  depth: number;
  insecure: boolean;
  caCert?: string;
}

/** A `.tmpl.img` (or any path): an archive read in place, as FROM takes a file. */
export function isFile(spec: string): boolean {
  return /^(\.\.?)?\//.test(spec) || /\.(tmpl\.img|tar)$/.test(spec);
}

/**
 * One side of the diff, read where it lives and never copied or tagged: an archive in place, a
 * registry reference from the registry, anything else from the store; with the backend it came
 * from, for what refers to it. `strata report` and `strata sbom` open their images the same way.
 */
export async function openSide(
  ctx: Context,
  a: { insecure: boolean; caCert?: string },
  spec: string,
  sel: Selector,
  closers: (() => void)[],
): Promise<DiffSide & { content: ContentSource }> {
  if (isFile(spec)) {
    const { openArchive } = await import('@strata/store');
    const archive = await openArchive(path.resolve(spec));
    return { ref: spec, image: await archive.selectImage(sel), content: archive.content };
  }
  const { parseReference } = await import('@strata/oci');
  const ref = parseReference(spec);
  if (ref.registry !== undefined) {
    const { openRemoteImage } = await import('@strata/registry');
    const { transportOptions } = await import('./registry');
    const remote = await openRemoteImage(ref, sel, await transportOptions(a, ref.registry));
    closers.push(remote.close);
    return { ref: spec, image: remote.image, content: remote.content };
  }
  const store = await ctx.store();
  const { storeContent } = await import('@strata/store');
  const top = await store.resolve(spec);
  return {
    ref: spec,
    image: await store.selectImage(top, sel, spec),
    content: storeContent(store),
  };
}

type Side = DiffSide & { content: ContentSource };

/**
 * Both sides. Without --platform, a multi-platform side is compared on the platform of a
 * single-platform other side (a build for the runner against the multi-platform release before
 * it): like with like. Two multi-platform sides still need --platform.
 */
async function openPair(
  ctx: Context,
  a: { a: string; b: string; insecure: boolean; caCert?: string },
  sel: Selector,
  closers: (() => void)[],
): Promise<[Side, Side]> {
  const open = (spec: string, s: Selector) =>
    openSide(ctx, a, spec, s, closers).then(
      (side) => ({ side }),
      (error: unknown) => ({ error }),
    );
  const tries = await Promise.all([open(a.a, sel), open(a.b, sel)]);
  if (sel.platform === undefined) {
    const { InvalidArgumentError, configPlatform } = await import('@strata/oci');
    for (const [i, j] of [
      [0, 1],
      [1, 0],
    ] as const) {
      const mine = tries[i] as { side?: Side; error?: unknown };
      const other = tries[j] as { side?: Side; error?: unknown };
      if (mine.error instanceof InvalidArgumentError && other.side) {
        const platform = configPlatform(await other.side.image.config());
        tries[i] = await open(i === 0 ? a.a : a.b, { ...sel, platform });
      }
    }
  }
  const sides = tries.map((t) => {
    if ('error' in t) throw t.error;
    return t.side;
  });
  return [sides[0] as Side, sides[1] as Side];
}

export function diffCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'diff <a> <b>',
    'What changed from image a to image b: packages, files, sizes, metadata. Each is a local tag or digest, a registry reference or a .tmpl.img file. Exit 0 if none, 1 if some, 2 on error',
    (c) =>
      tlsOptions(
        c
          .positional('a', { type: 'string', demandOption: true, describe: 'The old image' })
          .positional('b', { type: 'string', demandOption: true, describe: 'The new image' })
          .option('platform', platformOption('compare this platform'))
          .option('depth', {
            type: 'number',
            default: 1,
            describe: 'Sum directory sizes down to this many path components',
            coerce: numberCheck('--depth', 'count'),
          }),
      ),
    run<DiffArgs>(async (ctx, a) => {
      const closers: (() => void)[] = [];
      let r: DiffReport;
      try {
        const { parsePlatform } = await import('@strata/oci');
        const sel: Selector =
          a.platform !== undefined ? { platform: parsePlatform(a.platform) } : {};
        const { diffImages } = await import('@strata/imager');
        const [sa, sb] = await openPair(ctx, a, sel, closers);
        r = await diffImages(sa, sb, { depth: a.depth });
      } catch (e) {
        // Exit 1 means "they differ", as for diff(1): a diff that could not be made is 2.
        throw exitCodeFor(e) === 130 ? e : new ExitCodeError(e, 2);
      } finally {
        for (const close of closers) close();
      }
      if (ctx.json) ctx.printJson(r);
      else for (const line of formatDiff(r)) ctx.print(line);
      if (!r.identical) ctx.exitCode = 1;
    }),
  );
}

const octal = (m: number) => m.toString(8).padStart(4, '0');

function what(f: FileInfo): string {
  if (f.type === 'file') return formatBytes(f.size);
  if (f.type === 'symlink') return `-> ${f.link ?? ''}`;
  if (f.type === 'char' || f.type === 'block') return `${f.type} ${f.device ?? ''}`;
  return f.type;
}

function signed(n: number): string {
  return `${n < 0 ? '-' : '+'}${formatBytes(Math.abs(n))}`;
}

/** The human report: sections, one line per item. */
export function formatDiff(r: DiffReport): string[] {
  const out: string[] = [];
  out.push(`--- ${r.a.ref} ${r.a.digest} (${r.a.platform})`);
  out.push(`+++ ${r.b.ref} ${r.b.digest} (${r.b.platform})`);
  if (r.identical) {
    out.push('no differences');
    return out;
  }
  const p = r.packages;
  out.push(
    `Packages: ${p.added.length} added, ${p.removed.length} removed, ${p.changed.length} changed`,
  );
  for (const x of p.added) out.push(`  + ${x.name} ${x.version} (${x.architecture})`);
  for (const x of p.removed) out.push(`  - ${x.name} ${x.version} (${x.architecture})`);
  for (const x of p.changed) out.push(`  ~ ${x.name} ${x.old} -> ${x.new} (${x.direction})`);
  const f = r.files;
  out.push(
    `Files: ${f.added.length} added, ${f.removed.length} removed, ${f.changed.length} changed`,
  );
  for (const x of f.added) out.push(`  + ${shownPath(x.path)}  ${what(x)}`);
  for (const x of f.removed) out.push(`  - ${shownPath(x.path)}  ${what(x)}`);
  for (const x of f.changed) {
    const notes = x.changes.map((c) => {
      if (c === 'mode') return `mode ${octal(x.old.mode)} -> ${octal(x.new.mode)}`;
      if (c === 'owner') return `owner ${x.old.uid}:${x.old.gid} -> ${x.new.uid}:${x.new.gid}`;
      if (c === 'content' && x.old.size !== x.new.size)
        return `content ${formatBytes(x.old.size)} -> ${formatBytes(x.new.size)}`;
      if (c === 'type') return `type ${x.old.type} -> ${x.new.type}`;
      return c;
    });
    out.push(`  ~ ${shownPath(x.path)}  ${notes.join(', ')}`);
  }
  const s = r.sizes;
  out.push(`Sizes (file data, directories down to depth ${s.depth}):`);
  const sizeLine = (name: string, c: { old: number; new: number; delta: number }) =>
    `  ${name}  ${formatBytes(c.old)} -> ${formatBytes(c.new)} (${signed(c.delta)})`;
  out.push(sizeLine('total', s.total));
  for (const d of s.dirs) out.push(sizeLine(`${shownPath(d.path)}/`, d));
  const m = r.metadata;
  const meta: string[] = [];
  // A change may take more than one line (the base chain takes two): count the changes.
  let changes = 0;
  const change = (...lines: string[]) => {
    meta.push(...lines);
    changes++;
  };
  if (m.name) change(`  name: ${m.name.old ?? '(none)'} -> ${m.name.new ?? '(none)'}`);
  if (m.created)
    change(`  created: ${m.created.old ?? '(unknown)'} -> ${m.created.new ?? '(unknown)'}`);
  if (m.platform) change(`  platform: ${m.platform.old} -> ${m.platform.new}`);
  for (const x of m.features.added) change(`  + feature ${x}`);
  for (const x of m.features.removed) change(`  - feature ${x}`);
  for (const x of m.exclusions.added) change(`  + exclusion ${x.pattern} (${x.action})`);
  for (const x of m.exclusions.removed) change(`  - exclusion ${x.pattern} (${x.action})`);
  for (const x of m.exclusions.changed)
    change(
      `  ~ exclusion ${x.new.pattern}: ${x.old.action}, ${x.old.matched} matched -> ${x.new.action}, ${x.new.matched} matched`,
    );
  if (m.baseChain) {
    const chain = (c: { ref: string; digest: string }[]) =>
      c.length ? c.map((b) => `${b.ref}@${b.digest}`).join(' > ') : '(none)';
    change(`  base chain: ${chain(m.baseChain.old)}`, `          -> ${chain(m.baseChain.new)}`);
  }
  for (const [k, v] of Object.entries(m.labels.added)) change(`  + label ${k}=${v}`);
  for (const [k, v] of Object.entries(m.labels.removed)) change(`  - label ${k}=${v}`);
  for (const [k, v] of Object.entries(m.labels.changed))
    change(`  ~ label ${k}: ${v.old} -> ${v.new}`);
  for (const [k, v] of Object.entries(m.env.added)) change(`  + env ${k}=${v}`);
  for (const [k, v] of Object.entries(m.env.removed)) change(`  - env ${k}=${v}`);
  for (const [k, v] of Object.entries(m.env.changed)) change(`  ~ env ${k}: ${v.old} -> ${v.new}`);
  out.push(`Metadata: ${changes === 0 ? 'no changes' : counted(changes, 'change')}`);
  out.push(...meta);
  return out;
}
