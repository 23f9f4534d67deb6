import type { Argv } from 'yargs';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { movedTagNote, outputOption, tagsBefore, stdinDash, platformOption } from '../output';
import { TransferBars } from '../progress';

interface SaveArgs extends GlobalArgs {
  ref: string;
  output: string;
  platform?: string;
}
interface LoadArgs extends GlobalArgs {
  file: string;
  tag?: string;
}

export function archiveCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y
    .command(
      'save <ref>',
      'Write an image to one file (an OCI archive, e.g. name.tmpl.img)',
      (c) =>
        c
          .positional('ref', { type: 'string', demandOption: true })
          .option('output', outputOption('Archive file to write'))
          .option('platform', platformOption('save the rootfs image of this platform only')),
      run<SaveArgs>(async (ctx, a) => {
        const { saveArchive } = await import('@strata/store');
        const { parsePlatform } = await import('@strata/oci');
        const platform = a.platform !== undefined ? parsePlatform(a.platform) : undefined;
        await ctx.output(a.output, '-o');
        const progress = ctx.progress();
        let d;
        try {
          const bars = new TransferBars(progress, 'writing');
          const store = await ctx.store();
          // Interrupted, it removes its temp file (next to the output) before it ends.
          d = await ctx.interruptible((signal) =>
            saveArchive(store, a.ref, a.output, platform, bars.onEvent, signal),
          );
        } finally {
          progress.done();
        }
        if (ctx.json) ctx.printJson({ ref: a.ref, digest: d.digest, file: a.output });
        else ctx.print(`saved ${a.ref} ${d.digest} to ${a.output}`);
      }),
    )
    .command(
      'load <file>',
      'Load an OCI archive (e.g. name.tmpl.img, or - for stdin) or an OCI image layout directory into the store',
      (c) =>
        c
          .positional('file', { type: 'string', demandOption: true, coerce: stdinDash })
          .option('tag', {
            alias: 't',
            type: 'string',
            describe: 'Tag for the loaded image',
          }),
      run<LoadArgs>(async (ctx, a) => {
        const { loadArchive } = await import('@strata/store');
        const store = await ctx.store(true);
        const before = await tagsBefore(store);
        const progress = ctx.progress();
        let loaded;
        try {
          const bars = new TransferBars(progress, 'loading');
          loaded = await loadArchive(
            store,
            a.file === '-' ? process.stdin : a.file,
            a.tag,
            bars.onEvent,
          );
        } finally {
          progress.done();
        }
        for (const l of loaded) {
          if (l.warning !== undefined) ctx.note(`strata: warning: ${l.warning}`);
          if (l.ref !== undefined) movedTagNote(ctx, l.ref, before.get(l.ref), l.descriptor.digest);
        }
        if (ctx.json)
          ctx.printJson(loaded.map((l) => ({ ref: l.ref, digest: l.descriptor.digest })));
        else
          for (const l of loaded)
            ctx.print(`loaded ${l.ref ?? '(untagged)'} ${l.descriptor.digest}`);
      }),
    );
}
