import type { Argv } from 'yargs';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { counted, outputOption, platformOption } from '../output';

interface DebsArgs extends GlobalArgs {
  ref: string;
  output: string;
  platform?: string;
}

export function debsCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'debs <ref>',
    'Write the Debian packages attached to a template as a flat apt repository',
    (c) =>
      c
        .positional('ref', { type: 'string', demandOption: true })
        .option('output', outputOption('Folder to write the .debs, Packages and Release into'))
        .option('platform', platformOption('the packages of this platform')),
    run<DebsArgs>(async (ctx, a) => {
      const { exportDebs } = await import('@strata/compose');
      const { parsePlatform } = await import('@strata/oci');
      const platform = a.platform !== undefined ? parsePlatform(a.platform) : undefined;
      await ctx.output(a.output, '-o', true);
      const r = await exportDebs(await ctx.store(), a.ref, a.output, platform);
      if (ctx.json) {
        ctx.printJson(r);
        return;
      }
      for (const p of r.packages)
        ctx.print(`${p.filename}  ${p.name} ${p.version} ${p.architecture}`);
      ctx.print(`wrote ${counted(r.packages.length, 'package')}, Packages and Release to ${r.dir}`);
      ctx.print(`use it with: deb [trusted=yes] file:${r.dir} ./`);
    }),
  );
}
