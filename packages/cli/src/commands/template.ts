import type { Argv } from 'yargs';
import * as path from 'node:path';
import { isFile } from './diff';
import { Compression, InvalidArgumentError, stepLine } from '@strata/oci';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import {
  counted,
  formatBytes,
  movedTagNote,
  shortDigest,
  stdinDash,
  platformOption,
} from '../output';

interface CreateArgs extends GlobalArgs {
  rootfs: string;
  tag: string[];
  name: string;
  feature: string[];
  exclude: string[];
  keep: string[];
  defaultExcludes: boolean;
  compression: Compression;
  platform?: string;
}

interface InspectArgs extends GlobalArgs {
  ref: string;
  platform?: string;
}

/** SOURCE_DATE_EPOCH, when set, as whole seconds. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^\d+$/.test(v))
    throw new InvalidArgumentError(
      `SOURCE_DATE_EPOCH must be whole seconds, got ${JSON.stringify(v)}`,
    );
  return Number(v);
}

export function templateCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y
    .command('template', 'Make templates from finished root filesystems', (t) =>
      t
        .command(
          'create <rootfs>',
          'Make a template from a rootfs directory, a rootfs.tar[.gz|.zst], or - for a tar on stdin',
          (c) =>
            c
              .positional('rootfs', { type: 'string', demandOption: true, coerce: stdinDash })
              .option('tag', {
                alias: 't',
                type: 'string',
                array: true,
                nargs: 1,
                demandOption: true,
                describe: 'Local tag, name[:tag] (repeatable: -t a -t b)',
              })
              .option('name', {
                type: 'string',
                demandOption: true,
                describe: 'Template name for the metadata',
              })
              .option('feature', {
                type: 'string',
                array: true,
                nargs: 1,
                default: [],
                describe: 'A feature this template provides (repeatable)',
              })
              .option('exclude', {
                type: 'string',
                array: true,
                nargs: 1,
                default: [],
                describe: 'Also leave out paths matching this glob (repeatable)',
              })
              .option('keep', {
                type: 'string',
                array: true,
                nargs: 1,
                default: [],
                describe: 'Switch off one default exclusion, by its pattern (repeatable)',
              })
              .option('default-excludes', {
                type: 'boolean',
                default: true,
                describe: 'Apply the default exclusions (--no-default-excludes to switch all off)',
              })
              .option('compression', {
                choices: ['zstd', 'gzip'] as const,
                default: 'zstd' as const,
                describe: 'Layer compression',
              })
              .option('platform', {
                type: 'string',
                describe:
                  "The rootfs's platform (os/arch[/variant]); default: its dpkg's, else the host's",
              }),
          run<CreateArgs>(async (ctx, a) => {
            const { createTemplate, openRootfsSource } = await import('@strata/template');
            const { parsePlatform } = await import('@strata/oci');
            const platform = a.platform !== undefined ? parsePlatform(a.platform) : undefined;
            const store = await ctx.store(true);
            const progress = ctx.progress();
            // A rootfs tarball's size is the total of the extracting; a directory has none.
            const { stat } = await import('node:fs/promises');
            const st = a.rootfs === '-' ? undefined : await stat(a.rootfs).catch(() => undefined);
            const bar = progress.bar('extracting', st?.isFile() ? st.size : undefined);
            const source = await openRootfsSource(a.rootfs, process.stdin);
            // Interrupted, it removes the rootfs it unpacked in the store before it ends.
            const t = await ctx.interruptible((signal) =>
              createTemplate(store, {
                signal,
                source,
                tag: a.tag,
                name: a.name,
                features: a.feature,
                exclude: a.exclude,
                keep: a.keep,
                noDefaults: !a.defaultExcludes,
                compression: a.compression,
                sourceDateEpoch: sourceDateEpoch(),
                ...(platform ? { platform } : {}),
                onWarning: (m) => {
                  if (!ctx.quiet) progress.line(`strata: warning: ${m}`);
                },
                onProgress: (p) => {
                  bar.label(p.phase === 'extract' ? 'extracting' : 'packing');
                  bar.update(p.bytes);
                },
              }),
            );
            progress.done();
            for (const m of t.moved) movedTagNote(ctx, m.ref, m.from, m.to);
            const layer = t.manifest.layers[0];
            const meta = t.config.strata;
            if (ctx.json) {
              ctx.printJson({
                ref: t.ref,
                refs: t.refs,
                moved: t.moved,
                digest: t.descriptor.digest,
                layers: t.manifest.layers,
                packages: meta?.packages.length ?? 0,
                exclusions: meta?.exclusions ?? [],
                seconds: progress.elapsed(),
              });
            } else {
              ctx.print(
                `created ${t.refs.join(', ')} ${t.descriptor.digest} (${counted(meta?.packages.length ?? 0, 'package')}, layer ${formatBytes(layer?.size ?? 0)} ${shortDigest(layer?.digest ?? '')}, ${progress.elapsed().toFixed(1)}s)`,
              );
            }
          }),
        )
        .demandCommand(1, 'Name a template command: create'),
    )
    .command(
      'inspect <ref>',
      'Show a template: name, date, features, layers, packages, exclusions',
      (c) =>
        c
          .positional('ref', {
            type: 'string',
            demandOption: true,
            describe: 'A local tag or digest, or a .tmpl.img file',
          })
          .option('platform', platformOption('show this platform only')),
      run<InspectArgs>(async (ctx, a) => {
        const { archiveSource, loadTemplateSet, summarizeSet } = await import('@strata/template');
        const { parsePlatform } = await import('@strata/oci');
        const platform = a.platform !== undefined ? parsePlatform(a.platform) : undefined;
        // A .tmpl.img is read in place, as diff, sbom and report read one: no store needed.
        const source = isFile(a.ref)
          ? archiveSource(await (await import('@strata/store')).openArchive(path.resolve(a.ref)))
          : await ctx.store();
        const s = summarizeSet(await loadTemplateSet(source, a.ref, platform));
        if (ctx.json) {
          ctx.printJson(s);
          return;
        }
        ctx.print(`Ref:           ${s.ref}`);
        ctx.print(`Digest:        ${s.digest}`);
        if (s.platforms) ctx.print(`Platforms:     ${s.platforms.join(', ')}`);
        if (s.images) {
          const label = (i: { role: string; platform?: string }) =>
            s.platforms && i.platform ? `${i.role} ${i.platform}` : i.role;
          ctx.print(`Images:        ${s.images.map(label).join(' + ')} (one OCI index)`);
          const shared = s.sharedLayers ?? [];
          ctx.print(
            `Shared layers: ${shared.length} (${formatBytes(shared.reduce((n, l) => n + l.size, 0))}, stored once)`,
          );
          for (const l of shared)
            ctx.print(`  ${shortDigest(l.digest)}  ${formatBytes(l.size).padStart(10)}`);
        }
        for (const img of s.images ?? [{ role: '', ...s }]) {
          if (img.role) {
            const p = 'platform' in img && s.platforms ? ` ${img.platform}` : '';
            ctx.print(`\n[${img.role}${p}] ${img.digest}`);
          }
          const dist =
            img.distribution.prettyName ??
            ([img.distribution.id, img.distribution.versionId].filter(Boolean).join(' ') ||
              'unknown');
          ctx.print(`Name:          ${img.name ?? '(none)'}`);
          ctx.print(`Created:       ${img.created ?? '(unknown)'}`);
          ctx.print(`Features:      ${img.features.length ? img.features.join(', ') : '(none)'}`);
          ctx.print(`Architecture:  ${img.architecture} (${img.os})`);
          ctx.print(`Distribution:  ${dist}`);
          // The direct base first, then its own bases down to the root (as `docker history`).
          const bases = [...img.baseChain].reverse();
          if (bases.length === 0) ctx.print('Base:          (none)');
          bases.forEach((b, i) =>
            ctx.print(
              `${i === 0 ? 'Base:' : ''}`.padEnd(15) +
                `${b.ref} ${b.digest}${b.name && b.name !== b.ref ? ` (${b.name})` : ''}`,
            ),
          );
          if (img.env.length > 0) ctx.print(`Env:           ${img.env.join('\n               ')}`);
          const labels = Object.entries(img.labels);
          if (labels.length > 0)
            ctx.print(
              `Labels:        ${labels.map(([k, v]) => `${k}=${v}`).join('\n               ')}`,
            );
          ctx.print(`Packages:      ${img.packageCount}`);
          if (img.shadowedPackages.length > 0)
            ctx.print(
              `Shadowed:      ${counted(img.shadowedPackages.length, 'package')} removed or replaced, still in lower layers (sbom --all-layers)`,
            );
          ctx.print(`Layers:        ${img.layers.length} (${formatBytes(img.size)})`);
          // A step that changed nothing has no layer: shown where it ran, as docker history does.
          const emptyAfter = (n: number) => {
            for (const e of img.emptySteps.filter((x) => x.after === n))
              ctx.print(
                `  ${'(no layer)'.padEnd(12)}  ${'0 B'.padStart(10)}  ${stepLine(e.createdBy)}`,
              );
          };
          for (const [i, l] of img.layers.entries()) {
            emptyAfter(i);
            ctx.print(
              `  ${shortDigest(l.digest)}  ${formatBytes(l.size).padStart(10)}  ${stepLine(l.createdBy ?? '')}`,
            );
            // What each step did to the packages, as the layer's metadata records it: the
            // answer to "which layer brought this in", short enough to read (--json has all).
            for (const [sign, list] of [
              ['+', l.packagesAdded ?? []],
              ['-', l.packagesRemoved ?? []],
            ] as const) {
              if (list.length === 0) continue;
              ctx.print(
                `${' '.repeat(28)}${sign} ${list.length > 8 ? counted(list.length, 'package') : list.join(', ')}`,
              );
            }
          }
          emptyAfter(img.layers.length);
          const used = img.exclusions.filter((e) => e.matched > 0).length;
          ctx.print(`Exclusions:    ${img.exclusions.length} rules, ${used} matched`);
          for (const e of img.exclusions) {
            ctx.print(
              `  ${e.action === 'empty' ? 'emptied' : 'dropped'} ${e.pattern} (${e.matched} matched): ${e.reason}`,
            );
          }
        }
        ctx.print(`\nArtifacts:     ${s.artifacts.length === 0 ? '(none)' : s.artifacts.length}`);
        for (const x of s.artifacts) {
          const on = x.subject === s.digest ? 'the template' : shortDigest(x.subject);
          ctx.print(
            `  ${shortDigest(x.digest)}  ${x.artifactType}  ${x.files} file${x.files === 1 ? '' : 's'}  (on ${on})`,
          );
        }
      }),
    );
}
