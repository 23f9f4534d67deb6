import * as path from 'node:path';
import type { Argv } from 'yargs';
import { ExitCodeError, exitCodeFor, platformOption, readInputFile } from '../output';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { timeoutOption, tlsOptions } from './registry';
import { buildArgOption, parseBuildArgs } from '../build-args';
import { aptAuthOption, secretOption } from '../secrets';

interface CheckArgs extends GlobalArgs {
  tag: string;
  file?: string;
  context?: string;
  target?: string;
  buildArg: string[];
  aptSources?: string;
  packages: boolean;
  insecure: boolean;
  caCert?: string;
  timeout?: number;
  platform?: string;
  secret: string[];
}

export function checkCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'check <tag>',
    'Is a built template up to date with its Stratafile, its bases and the apt indices? Exit 0 if so, 1 with the reasons, 2 if it cannot tell',
    (c) =>
      timeoutOption(tlsOptions(c))
        .positional('tag', { type: 'string', demandOption: true, describe: 'The built template' })
        .option('file', {
          alias: 'f',
          type: 'string',
          describe: 'Stratafile it was built from (default: ./Stratafile)',
        })
        .option('context', {
          type: 'string',
          describe: "Build context (default: the Stratafile's dir)",
        })
        .option('target', {
          type: 'string',
          describe: 'Stage it was built from (default: the last)',
        })
        .option('build-arg', buildArgOption())
        .option('apt-sources', {
          type: 'string',
          describe:
            "apt sources file (default: those the template was built with, else the build host's)",
        })
        .option('packages', {
          type: 'boolean',
          default: true,
          describe: 'Look for newer package versions (--no-packages to skip the index download)',
        })
        .option('platform', platformOption('check this platform'))
        .option(
          'secret',
          secretOption(
            "As strata build takes it (repeatable): id=apt-auth is apt's auth.conf for the private repositories the build read; the others are accepted and play no part, as only the fact of a mount is in a step's key",
          ),
        ),
    run<CheckArgs>(async (ctx, a) => {
      const { checkTemplate, formatReason } = await import('@strata/compose');
      const { registryResolver } = await import('./registry');
      const { makeSources } = await import('@strata/debian');
      const aptAuth = aptAuthOption(a.secret);
      let r;
      try {
        // Read once: what was checked is what the steps' keys use (a FIFO can be read only once).
        const aptSources =
          a.aptSources !== undefined
            ? makeSources(await readInputFile('--apt-sources', a.aptSources), a.aptSources)
            : undefined;
        const store = await ctx.store();
        const { parsePlatform } = await import('@strata/oci');
        r = await checkTemplate(store, a.tag, {
          ...(a.platform !== undefined ? { platform: parsePlatform(a.platform) } : {}),
          file: path.resolve(a.file ?? 'Stratafile'),
          context: a.context,
          target: a.target,
          buildArgs: parseBuildArgs(a.buildArg),
          ...(aptSources !== undefined ? { aptSources } : {}),
          noPackages: !a.packages,
          ...aptAuth,
          // Registry bases resolve as build's FROM does, with the same options and credentials.
          resolveRemote: registryResolver(store, a),
        });
      } catch (e) {
        // Exit 1 means stale; a check that could not finish (an unreachable base registry, a
        // missing Stratafile) must not read as one, so it is 2 (an interrupt stays 130).
        throw exitCodeFor(e) === 1 ? new ExitCodeError(e, 2) : e;
      }
      if (ctx.json) ctx.printJson(r);
      else {
        for (const n of r.notes) ctx.note(`strata: note: ${n}`);
        if (r.upToDate) ctx.print(`${r.ref} is up to date`);
        else {
          ctx.print(`${r.ref} is stale:`);
          for (const reason of r.reasons) ctx.print(formatReason(reason));
        }
      }
      if (!r.upToDate) ctx.exitCode = 1;
    }),
  );
}
