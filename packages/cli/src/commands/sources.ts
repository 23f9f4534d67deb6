import type { Argv } from 'yargs';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { counted, outputOption, platformOption, readInputFile } from '../output';
import { aptAuthOption, secretOption } from '../secrets';

interface SourcesArgs extends GlobalArgs {
  ref: string;
  output: string;
  platform?: string;
  aptSources?: string;
  attach: boolean;
  allowMissing: boolean;
  secret: string[];
}

export function sourcesCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'sources <ref>',
    "Download the Debian source packages of a template's binaries (with its COPY'd files and the sources its DEBUILD steps built from) into a folder, with an index",
    (c) =>
      c
        .positional('ref', { type: 'string', demandOption: true })
        .option(
          'output',
          outputOption('Folder to write the sources, sources.json and SOURCES.txt into'),
        )
        .option('platform', platformOption('the sources of this platform'))
        .option('apt-sources', {
          type: 'string',
          describe:
            "apt sources file, each deb line read as deb-src (default: those the template was built with, else the build host's)",
        })
        .option('attach', {
          type: 'boolean',
          default: false,
          describe: 'Also attach the bundle to the template as an OCI artifact (push carries it)',
        })
        .option('allow-missing', {
          type: 'boolean',
          default: false,
          describe:
            'Exit 0 even when the mirror lacks some source packages (they are still listed)',
        })
        .option(
          'secret',
          secretOption(
            "As strata build takes it (repeatable): id=apt-auth is apt's auth.conf for a private mirror or repository; the others are accepted and play no part",
          ),
        ),
    run<SourcesArgs>(async (ctx, a) => {
      const { writeSources } = await import('@strata/compose');
      const { makeSources } = await import('@strata/debian');
      const { NotFoundError, parsePlatform, stepLine } = await import('@strata/oci');
      const aptSources =
        a.aptSources !== undefined
          ? makeSources(await readInputFile('--apt-sources', a.aptSources), a.aptSources)
          : undefined;
      await ctx.output(a.output, '-o', true);
      const r = await writeSources(await ctx.store(), a.ref, a.output, {
        ...(a.platform !== undefined ? { platform: parsePlatform(a.platform) } : {}),
        ...(aptSources !== undefined ? { aptSources } : {}),
        attach: a.attach,
        ...aptAuthOption(a.secret),
      });
      const { index, stats } = r;
      const failed = index.missing.length > 0 && !a.allowMissing;
      // On stderr with --json too: stdout stays the one JSON document.
      for (const m of index.missing) {
        const by = (m.builtUsing ?? []).map((b) => `${b.binary} (${b.field})`);
        const needed = by.length > 0 ? `; needed by ${by.join(', ')}` : '';
        ctx.note(`strata: warning: ${m.name} ${m.version} is missing: ${m.reason}${needed}`);
      }
      for (const c of index.copied) {
        if (c.fromStage === undefined) continue;
        ctx.note(
          `strata: warning: ${stepLine(c.createdBy)}: what stage ${c.fromStage} built is in ${c.file}, but not that stage's sources (its COPY inputs and build dependencies): add them to the bundle yourself`,
        );
      }
      if (ctx.json) {
        const doc = {
          dir: r.dir,
          ...index,
          stats,
          ...(r.attached ? { attached: r.attached.digest } : {}),
        };
        // What is missing fails the command after the rest is written: stdout is still one
        // object, the report with the error in it.
        if (failed) ctx.failureReport = doc;
        else ctx.printJson(doc);
      } else {
        const files = index.sources.reduce((n, s) => n + s.files.length, 0);
        ctx.print(
          `wrote ${counted(index.sources.length, 'source package')} (${counted(files, 'file')}; ${stats.downloads} downloaded, ${stats.fromCache} from the store's cache)` +
            `${index.copied.length > 0 ? `, ${index.copied.length} COPY layer${index.copied.length === 1 ? '' : 's'}` : ''}` +
            ` and sources.json to ${r.dir}${r.attached ? `; attached as ${r.attached.digest}` : ''}`,
        );
      }
      if (failed) {
        throw new NotFoundError(
          `${index.missing.length} source package${index.missing.length === 1 ? ' is' : 's are'} not on the mirror: ${index.missing.map((m) => `${m.name} ${m.version}`).join(', ')}`,
          { hint: 'they are listed in sources.json; --allow-missing exits 0 all the same' },
        );
      }
    }),
  );
}
