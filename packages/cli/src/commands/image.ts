import type { Argv } from 'yargs';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import {
  counted,
  distinctFiles,
  formatBytes,
  outputOption,
  shortDigest,
  platformOption,
} from '../output';

interface FlattenArgs extends GlobalArgs {
  ref: string;
  rootfs?: string;
  buildchroot?: string;
  dir?: string;
  tmpDir?: string;
  platform?: string;
}
interface ImageArgs extends GlobalArgs {
  ref: string;
  ext4?: string;
  wks?: string;
  output?: string;
  size?: string;
  'extra-space'?: string;
  label?: string;
  bmap?: boolean;
  role: 'rootfs' | 'buildchroot';
  platform?: string;
}
interface BundleArgs extends GlobalArgs {
  tag: string;
  rootfs: string;
  buildchroot: string;
}

/** `--platform os/arch[/variant]`: which platform's image of a multi-platform template. */
async function platformArg(a: { platform?: string }) {
  if (a.platform === undefined) return {};
  const { parsePlatform } = await import('@strata/oci');
  return { platform: parsePlatform(a.platform) };
}

function epoch(): number | undefined {
  const s = process.env.SOURCE_DATE_EPOCH;
  return s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined;
}

/** `strata flatten`, `strata image`, `strata bundle`: the heavy code loads only when they run. */
export function imageCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y
    .command(
      'flatten <ref>',
      'Merge an image’s layers into one rootfs tar (or a directory, as root)',
      (c) =>
        c
          .positional('ref', { type: 'string', demandOption: true })
          .option('rootfs', {
            type: 'string',
            describe: 'Write the rootfs to this .tar, .tar.gz or .tar.zst',
          })
          .option('buildchroot', {
            type: 'string',
            describe: 'Write the bundle’s buildchroot to this .tar, .tar.gz or .tar.zst',
          })
          .option('dir', {
            type: 'string',
            describe: 'Write the rootfs into this empty directory (root)',
          })
          .option('tmp-dir', {
            type: 'string',
            describe:
              'Scratch space for the uncompressed layers while writing a tar (default: next to the output)',
          })
          .option('platform', platformOption('the image of this platform'))
          .check((a) => {
            if (!a.rootfs && !a.buildchroot && !a.dir)
              throw new Error('say where to write: --rootfs FILE, --buildchroot FILE or --dir DIR');
            return distinctFiles([
              ['--rootfs', a.rootfs],
              ['--buildchroot', a.buildchroot],
              ['--dir', a.dir],
            ]);
          }),
      run<FlattenArgs>(async (ctx, a) => {
        const { checkFlattenDir, flattenToTar, flattenToDir } = await import('@strata/imager');
        const store = await ctx.store();
        const platform = await platformArg(a);
        const results: Record<string, unknown>[] = [];
        const jobs: ['rootfs' | 'buildchroot', string][] = [];
        if (a.rootfs) jobs.push(['rootfs', a.rootfs]);
        if (a.buildchroot) jobs.push(['buildchroot', a.buildchroot]);
        // Every output is checked before any is written: a refused --dir leaves no tar behind.
        if (a.dir) await checkFlattenDir(a.dir, `--dir ${a.dir}`);
        for (const [role, file] of jobs) await ctx.output(file, `--${role}`);
        for (const [role, file] of jobs) {
          const progress = ctx.progress();
          const bar = progress.bar(`${role}: reading layers`);
          let r;
          try {
            // Interrupted, it removes its scratch files (the layers uncompressed) before it ends.
            r = await ctx.interruptible((signal) =>
              flattenToTar(store, a.ref, file, {
                role,
                ...platform,
                tmpDir: a.tmpDir,
                signal,
                onProgress: (p) => {
                  bar.label(p.phase === 'index' ? `${role}: reading layers` : `${role}: writing`);
                  bar.update(p.bytes, p.total);
                },
              }),
            );
          } finally {
            progress.done();
          }
          results.push({ role, file, entries: r.entries, tarBytes: r.tarBytes, diffId: r.diffId });
          if (!ctx.json)
            ctx.print(
              `flattened ${a.ref} (${role}, ${counted(r.image.layers.length, 'layer')}) to ${file}: ${counted(r.entries, 'entry', 'entries')}, ${formatBytes(r.tarBytes)} tar, diffID ${shortDigest(r.diffId)} in ${progress.elapsed().toFixed(1)}s`,
            );
        }
        if (a.dir) {
          const progress = ctx.progress();
          const bar = progress.bar('rootfs: unpacking layers');
          let r;
          try {
            // Interrupted, it removes what it wrote into the folder before it ends.
            const dir = a.dir;
            r = await ctx.interruptible((signal) =>
              flattenToDir(store, a.ref, dir, {
                ...platform,
                signal,
                onProgress: (bytes, total) => bar.update(bytes, total),
              }),
            );
          } finally {
            progress.done();
          }
          results.push({ role: 'rootfs', dir: a.dir, entries: r.entries });
          if (!ctx.json)
            ctx.print(
              `flattened ${a.ref} (${counted(r.image.layers.length, 'layer')}) into ${a.dir} in ${progress.elapsed().toFixed(1)}s`,
            );
        }
        if (ctx.json) ctx.printJson(results);
      }),
    )
    .command(
      'image <ref>',
      'Build an ext4 image (--ext4) or a partitioned disk image from a .wks layout (--wks, -o)',
      (c) =>
        c
          .positional('ref', { type: 'string', demandOption: true })
          .option('ext4', { type: 'string', describe: 'Write an ext4 filesystem image here' })
          .option('size', { type: 'string', describe: 'Minimum ext4 size (e.g. 512M, 2G)' })
          .option('extra-space', {
            type: 'string',
            describe: 'Free space on top of the content (default 10M)',
          })
          .option('label', { type: 'string', describe: 'ext4 volume label' })
          .option('wks', {
            type: 'string',
            describe: 'Disk layout in the wic kickstart subset (docs/image.md)',
          })
          .option(
            'output',
            outputOption('Disk image to write (with --wks); .zst or .gz compresses it', false),
          )
          .option('bmap', {
            type: 'boolean',
            describe:
              'With --wks: also write the block map for bmaptool beside the image (DISK.img.bmap, also for DISK.img.zst)',
          })
          .option('role', {
            choices: ['rootfs', 'buildchroot'] as const,
            default: 'rootfs' as const,
            describe: 'Which image of a bundle',
          })
          .option('platform', platformOption('the image of this platform'))
          .check((a) => {
            if (Boolean(a.ext4) === Boolean(a.wks))
              throw new Error('give exactly one of --ext4 FILE or --wks LAYOUT -o FILE');
            if (a.wks && !a.output) throw new Error('--wks needs -o DISK.img');
            if (a.ext4 && a.output)
              throw new Error('-o goes with --wks; --ext4 names its own output');
            if (a.bmap && !a.wks) throw new Error('--bmap goes with --wks -o DISK.img');
            if (a.wks && (a.size || a['extra-space'] || a.label))
              throw new Error(
                '--size, --extra-space and --label are for --ext4; put them on part lines in the .wks',
              );
            return distinctFiles([['-o', a.output]], [['--wks', a.wks]]);
          }),
      run<ImageArgs>(async (ctx, a) => {
        const { buildExt4Image, buildDiskImage, bmapPathFor, parseSizeArg, readWksFile } =
          await import('@strata/imager');
        const bmap = a.bmap ? bmapPathFor(a.output as string) : undefined;
        if (bmap !== undefined)
          distinctFiles(
            [
              ['-o', a.output],
              ['--bmap', bmap],
            ],
            [['--wks', a.wks]],
          );
        if (a.ext4) await ctx.output(a.ext4, '--ext4');
        else await ctx.output(a.output as string, '-o');
        if (bmap !== undefined) await ctx.output(bmap, '--bmap');
        const store = await ctx.store();
        const platform = await platformArg(a);
        const progress = ctx.progress();
        const bar = progress.bar('');
        let phase = '';
        const onProgress = (p: {
          phase: string;
          detail?: string;
          bytes?: number;
          total?: number;
        }): void => {
          phase = `${p.phase}${p.detail ? ` ${p.detail}` : ''}`;
          bar.label(phase);
          bar.update(p.bytes ?? 0, p.total);
        };
        // Interrupted, the builders remove their scratch dir (the flat rootfs) before they end.
        if (a.ext4) {
          const ext4 = a.ext4;
          const r = await ctx.interruptible((signal) =>
            buildExt4Image(store, a.ref, ext4, {
              signal,
              role: a.role,
              ...platform,
              size: a.size === undefined ? undefined : parseSizeArg(a.size, '--size'),
              extraSpace:
                a['extra-space'] === undefined
                  ? undefined
                  : parseSizeArg(a['extra-space'], '--extra-space'),
              label: a.label,
              sourceDateEpoch: epoch(),
              onProgress,
            }),
          );
          progress.done();
          if (ctx.json) ctx.printJson({ file: a.ext4, sizeBytes: r.sizeBytes, uuid: r.uuid });
          else
            ctx.print(
              `wrote ext4 ${a.ext4}: ${formatBytes(r.sizeBytes)} (content ${formatBytes(r.contentBytes)}), UUID ${r.uuid}, in ${progress.elapsed().toFixed(1)}s`,
            );
          return;
        }
        const wks = await readWksFile(a.wks as string);
        const out = a.output as string;
        const r = await ctx.interruptible((signal) =>
          buildDiskImage(store, a.ref, wks, out, {
            signal,
            role: a.role,
            ...platform,
            wksFile: a.wks,
            bmap,
            sourceDateEpoch: epoch(),
            onProgress,
          }),
        );
        progress.done();
        if (ctx.json)
          ctx.printJson({
            file: out,
            sizeBytes: r.sizeBytes,
            ptable: r.ptable,
            partitions: r.partitions,
            ...(r.extended ? { extended: r.extended } : {}),
            ...(r.bmap ? { bmap: r.bmap } : {}),
          });
        else
          ctx.print(
            `wrote ${r.ptable} disk ${out}: ${formatBytes(r.sizeBytes)}, ${r.partitions
              .map((p) =>
                p.kind === 'raw'
                  ? `${p.mountpoint || 'raw'} at ${p.start} outside the table ${formatBytes(p.size)}`
                  : `${p.number}: ${p.mountpoint} ${p.fstype ?? 'raw'} ${formatBytes(p.size)}${p.kind === 'logical' ? ' (logical)' : ''}`,
              )
              .join(', ')}${
              r.bmap
                ? `; block map ${r.bmap.file}: ${formatBytes(r.bmap.mappedBlocks * 4096)} to write`
                : ''
            }, in ${progress.elapsed().toFixed(1)}s`,
          );
      }),
    )
    .command(
      'bundle <tag>',
      'Tag an OCI index that holds a rootfs image and its buildchroot (layers shared)',
      (c) =>
        c
          .positional('tag', { type: 'string', demandOption: true })
          .option('rootfs', {
            type: 'string',
            demandOption: true,
            describe: 'The target rootfs image (or a bundle)',
          })
          .option('buildchroot', {
            type: 'string',
            demandOption: true,
            describe: 'The buildchroot image (or a bundle)',
          }),
      run<BundleArgs>(async (ctx, a) => {
        const { createBundle, describeBundle } = await import('@strata/imager');
        const store = await ctx.store();
        const d = await createBundle(store, a.tag, {
          rootfs: a.rootfs,
          buildchroot: a.buildchroot,
        });
        const info = await describeBundle(store, a.tag);
        if (ctx.json) {
          ctx.printJson(info);
          return;
        }
        ctx.print(`bundled ${a.tag} ${d.digest}`);
        for (const img of info.images) {
          ctx.print(
            `  ${img.role.padEnd(11)} ${shortDigest(img.digest)}  ${counted(img.layers.length, 'layer')}`,
          );
        }
        const bytes = info.shared.reduce((n, l) => n + l.size, 0);
        ctx.print(
          `  shared      ${counted(info.shared.length, 'layer')}, ${formatBytes(bytes)} stored once`,
        );
      }),
    );
}
