import type { Argv } from 'yargs';
import type { Selector } from '@strata/oci';
import type { Context, GlobalArgs } from '../context';
import type { Runner } from '../main';
import { isFile, openSide } from './diff';
import { tlsOptions } from './registry';
import { formatBytes, outputOption, platformOption } from '../output';

interface ReportArgs extends GlobalArgs {
  ref: string;
  against?: string;
  platform?: string;
  output: string;
  insecure: boolean;
  caCert?: string;
}

/** The platforms of a local multi-platform template, for the report's header. */
async function localPlatforms(ctx: Context, spec: string): Promise<string[] | undefined> {
  const { parseReference, platformsOf, formatPlatform, MediaTypes } = await import('@strata/oci');
  if (isFile(spec)) return undefined;
  if (parseReference(spec).registry !== undefined) return undefined;
  const store = await ctx.store();
  const top = await store.resolve(spec);
  if (top.mediaType !== MediaTypes.imageIndex) return undefined;
  return platformsOf(await store.readImageIndex(top)).map(formatPlatform);
}

export function reportCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'report <ref>',
    'Write one self-contained HTML page about an image: header, layer sizes, a treemap of its files, its packages and, with --against, what changed (see docs/report.md)',
    (c) =>
      tlsOptions(
        c
          .positional('ref', {
            type: 'string',
            demandOption: true,
            describe: 'A local tag or digest, a registry reference or a .tmpl.img file',
          })
          .option('against', {
            type: 'string',
            describe: 'Show what changed from this image (as strata diff <against> <ref>)',
          })
          .option('platform', platformOption('report on this platform'))
          .option('output', outputOption('HTML file to write')),
      ),
    run<ReportArgs>(async (ctx, a) => {
      const closers: (() => void)[] = [];
      let bytes: number;
      try {
        const { InvalidArgumentError, parsePlatform } = await import('@strata/oci');
        if (a.output === '-' && ctx.json)
          throw new InvalidArgumentError(
            '-o - writes the page to stdout, where --json would write too: give one',
          );
        if (a.output !== '-') await ctx.output(a.output, '-o');
        const sel: Selector =
          a.platform !== undefined ? { platform: parsePlatform(a.platform) } : {};
        const { reportData, writeReport } = await import('@strata/imager');
        const [side, against, platforms] = await Promise.all([
          openSide(ctx, a, a.ref, sel, closers),
          a.against !== undefined ? openSide(ctx, a, a.against, sel, closers) : undefined,
          localPlatforms(ctx, a.ref),
        ]);
        // The licences come from what an SBOM reads of the layers (their copyright files).
        const { readInventory, reportLicences } = await import('@strata/sbom');
        const licences = reportLicences(await readInventory(side.ref, side.image));
        const data = await reportData(side, {
          ...(against ? { against } : {}),
          ...(platforms ? { platforms } : {}),
          licences,
        });
        if (a.output === '-') {
          const { renderReport } = await import('@strata/imager');
          const html = Buffer.from(renderReport(data), 'utf8');
          ctx.stdout.write(html);
          bytes = html.length;
        } else bytes = await writeReport(a.output, data);
      } finally {
        for (const close of closers) close();
      }
      if (a.output === '-') return; // stdout is the page
      if (ctx.json) ctx.printJson({ ref: a.ref, file: a.output, bytes });
      else ctx.print(`wrote ${a.output} (${formatBytes(bytes)})`);
    }),
  );
}
