import * as path from 'node:path';
import type { Argv } from 'yargs';
import type { Selector } from '@strata/oci';
import type { SbomFormat } from '@strata/sbom';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { tlsOptions } from './registry';
import { openSide } from './diff';
import { outputOption, platformOption } from '../output';

interface SbomArgs extends GlobalArgs {
  ref: string;
  platform?: string;
  format: SbomFormat;
  output?: string;
  compute: boolean;
  allLayers: boolean;
  insecure: boolean;
  caCert?: string;
}

export function sbomCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'sbom <ref>',
    'Write the SBOM (SPDX 2.3 or CycloneDX 1.6 JSON) of a template: a local tag or digest, a registry reference or a .tmpl.img file. The SBOM attached to it when there is one, else made from its layers',
    (c) =>
      tlsOptions(
        c
          .positional('ref', { type: 'string', demandOption: true })
          .option('platform', platformOption('the SBOM of this platform'))
          .option('format', {
            type: 'string',
            choices: ['spdx', 'cyclonedx'] as const,
            default: 'spdx' as SbomFormat,
            describe: 'SPDX 2.3 JSON or CycloneDX 1.6 JSON',
          })
          .option('output', outputOption('Write the SBOM to this file instead of stdout', false))
          .option('compute', {
            type: 'boolean',
            default: false,
            describe: 'Make it from the layers even when one is attached',
          })
          .option('all-layers', {
            type: 'boolean',
            default: false,
            describe:
              'Also list the packages a later layer removed or replaced: their files are still in lower layer blobs, which a push distributes (made from the layers)',
          }),
      ),
    run<SbomArgs>(async (ctx, a) => {
      const closers: (() => void)[] = [];
      try {
        const { parsePlatform } = await import('@strata/oci');
        const sel: Selector =
          a.platform !== undefined ? { platform: parsePlatform(a.platform) } : {};
        const { sbomOf } = await import('@strata/sbom');
        const src = await openSide(ctx, a, a.ref, sel, closers);
        const sbom = await sbomOf(src, a.format, { compute: a.compute, allLayers: a.allLayers });
        const digest = src.image.descriptor.digest;
        const from =
          sbom.source === 'attached'
            ? `attached to ${a.ref} (artifact ${sbom.artifact?.digest ?? ''})`
            : `made from the layers of ${a.ref}${a.compute || a.allLayers ? '' : ' (none is attached)'}`;
        // `-o -` is stdout, as the usual tools take it.
        if (a.output === undefined || a.output === '-') {
          ctx.note(`note: ${a.format} SBOM ${from}`);
          ctx.stdout.write(sbom.text);
          return;
        }
        const { writeFileAtomic } = await import('@strata/store');
        await ctx.output(a.output, '-o');
        const out = path.resolve(a.output);
        await writeFileAtomic(out, Buffer.from(sbom.text));
        if (ctx.json) {
          ctx.printJson({
            file: out,
            format: a.format,
            source: sbom.source,
            subject: digest,
            ...(sbom.artifact ? { artifact: sbom.artifact.digest } : {}),
          });
          return;
        }
        ctx.print(`wrote the ${a.format} SBOM of ${a.ref} (${digest}), ${from}, to ${out}`);
      } finally {
        for (const close of closers) close();
      }
    }),
  );
}
