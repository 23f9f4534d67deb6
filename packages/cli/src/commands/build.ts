import * as path from 'node:path';
import type { Argv } from 'yargs';
import { Compression, InvalidArgumentError, StrataError, stepLine } from '@strata/oci';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { timeoutOption, tlsOptions } from './registry';
import {
  counted,
  formatBytes,
  movedTagNote,
  readInputFile,
  shortDigest,
  tagsBefore,
} from '../output';
import { formatDuration, type Bar, type Progress } from '../progress';
import { sourceDateEpoch } from './template';
import { buildArgOption, parseBuildArgs } from '../build-args';
import { parseSecrets, secretOption } from '../secrets';

interface BuildArgs extends GlobalArgs {
  context: string;
  file?: string;
  tag: string[];
  name?: string;
  target?: string;
  buildArg: string[];
  secret: string[];
  aptSources?: string;
  cache: boolean;
  nativeDpkg: boolean;
  frozen: boolean;
  compression: Compression;
  cacheFrom: string[];
  cacheTo?: string;
  insecure: boolean;
  caCert?: string;
  timeout?: number;
  timestamp: 'mirror' | 'now';
  platform?: string;
}

export function buildCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y.command(
    'build [context]',
    'Build a template from a Stratafile: FROM a template, one layer per step, cached',
    (c) =>
      timeoutOption(
        tlsOptions(
          c
            .positional('context', {
              type: 'string',
              default: '.',
              describe: 'Build context directory',
            })
            .option('file', {
              alias: 'f',
              type: 'string',
              describe: 'Stratafile (default: <context>/Stratafile)',
            })
            .option('tag', {
              alias: 't',
              type: 'string',
              array: true,
              nargs: 1,
              default: [],
              describe:
                'Tag for the result, name[:tag] (repeatable: -t a:1 -t a:latest; the first names the template)',
            })
            .option('name', {
              type: 'string',
              describe:
                "Template name (metadata and image title); default: the title LABEL, else the tag's repository without its registry, else the stage's name, else the context directory's",
            })
            .option('target', { type: 'string', describe: 'Stage to build (default: the last)' })
            .option('platform', {
              type: 'string',
              describe:
                'Platforms to build for, os/arch[/variant],… (e.g. linux/amd64,linux/arm64): several give one multi-platform index',
            })
            .option('build-arg', buildArgOption())
            .option(
              'secret',
              secretOption(
                "Build secret for RUN --mount=type=secret, id=NAME,src=FILE or id=NAME,env=VARIABLE (repeatable); id=apt-auth is apt's auth.conf for BOOTSTRAP, INSTALL and the other apt steps",
              ),
            )
            .option('apt-sources', {
              type: 'string',
              describe: "apt sources file for the steps (default: the build host's)",
            })
            .option('cache', {
              type: 'boolean',
              default: true,
              describe: 'Reuse cached steps (--no-cache to run every step)',
            })
            .option('native-dpkg', {
              type: 'boolean',
              default: true,
              describe:
                "In a foreign template's INSTALL and UPGRADE, unpack with the host's dpkg (--no-native-dpkg: emulate it too)",
            })
            .option('frozen', {
              type: 'boolean',
              default: false,
              describe: 'Fail if Stratafile.lock no longer matches',
            })
            .option('compression', { choices: ['zstd', 'gzip'] as const, default: 'zstd' as const })
            .option('timestamp', {
              choices: ['mirror', 'now'] as const,
              default: 'mirror' as const,
              describe:
                'Build date without SOURCE_DATE_EPOCH: the apt mirror state (newest Release Date:) or now',
            })
            .option('cache-from', {
              type: 'string',
              array: true,
              nargs: 1,
              default: [],
              describe: 'Registry repository to take cached steps from (repeatable)',
            })
            .option('cache-to', {
              type: 'string',
              describe: 'Registry repository to publish cached steps to',
            }),
        ),
      ),
    run<BuildArgs>(async (ctx, a) => {
      const { build, BuildStepError, RegistryCache } = await import('@strata/compose');
      const { parsePlatforms, formatPlatform } = await import('@strata/oci');
      const platforms = a.platform !== undefined ? parsePlatforms(a.platform) : undefined;
      const { registryResolver, transportOptions } = await import('./registry');
      const { makeSources } = await import('@strata/debian');
      // A missing file fails before the store is locked, naming the option.
      // Read once: what was checked is what the steps' keys use (a FIFO can be read only once).
      const aptSources =
        a.aptSources !== undefined
          ? makeSources(await readInputFile('--apt-sources', a.aptSources), a.aptSources)
          : undefined;
      const store = await ctx.store(true);
      // The registry client loads only for a build that names a cache registry.
      const remote = async (spec: string, actions: Array<'pull' | 'push'>) => {
        const { parseReference } = await import('@strata/oci');
        const { RegistryClient } = await import('@strata/registry');
        const ref = parseReference(spec);
        if (!ref.registry)
          throw new InvalidArgumentError(`${spec}: name a registry, e.g. localhost:5000/cache`);
        const client = new RegistryClient({
          registry: ref.registry,
          repository: ref.repository,
          actions,
          ...(await transportOptions(a, ref.registry)),
        });
        return new RegistryCache(store, client);
      };
      const cacheFrom = await Promise.all(a.cacheFrom.map((s) => remote(s, ['pull'])));
      const cacheTo = a.cacheTo ? await remote(a.cacheTo, ['pull', 'push']) : undefined;
      const file = path.resolve(a.file ?? path.join(a.context, 'Stratafile'));
      const quiet = ctx.quiet;
      const progress = ctx.progress();
      // Notes, steps and warnings: quiet keeps only errors and the final line.
      const log = (s: string) => {
        if (!quiet) progress.line(s);
      };
      const steps = new StepLines(progress, log);
      // A step's own output, as it comes; on a terminal by whole lines, above the step's timer.
      let partial = '';
      const output = (chunk: Buffer) => {
        if (quiet) return;
        if (!progress.live) {
          ctx.stderr.write(chunk);
          return;
        }
        const lines = (partial + chunk.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const l of lines) progress.line(l);
      };
      const started = Date.now();
      const before = await tagsBefore(store);
      let stage = '';
      let tagged: string | undefined;
      try {
        const r = await ctx.interruptible((signal) =>
          build(store, {
            file,
            context: path.resolve(a.context),
            ...(a.tag[0] !== undefined ? { tag: a.tag[0], moreTags: a.tag.slice(1) } : {}),
            ...(a.name !== undefined ? { name: a.name } : {}),
            target: a.target,
            ...(platforms ? { platforms } : {}),
            buildArgs: parseBuildArgs(a.buildArg),
            secrets: parseSecrets(a.secret),
            ...(aptSources !== undefined ? { aptSources } : {}),
            noCache: !a.cache,
            nativeDpkg: a.nativeDpkg,
            frozen: a.frozen,
            compression: a.compression,
            cacheFrom,
            cacheTo,
            resolveRemote: registryResolver(store, a),
            sourceDateEpoch: sourceDateEpoch(),
            timestamp: a.timestamp,
            signal,
            onEvent: (e) => {
              switch (e.type) {
                case 'platform':
                  steps.end();
                  log(`== ${e.platform}`);
                  break;
                case 'stage':
                  steps.end();
                  stage = e.stage;
                  break;
                case 'step':
                  if (partial) output(Buffer.from('\n'));
                  steps.start(
                    `[${stage.startsWith('#') ? '' : `${stage} `}${e.step}/${e.steps}] ${stepLine(e.text)}`,
                  );
                  break;
                case 'unpack':
                  steps.unpacking(e.bytes, e.total);
                  break;
                case 'cached':
                  steps.end(
                    e.layer
                      ? `cached ${shortDigest(e.layer.digest)} ${formatBytes(e.layer.size)}`
                      : 'cached, no changes (no layer)',
                  );
                  break;
                case 'remote-cached':
                  steps.end(`fetched from cache ${e.from}`);
                  break;
                case 'layer':
                  steps.end(
                    (e.layer
                      ? `layer ${shortDigest(e.layer.digest)} ${formatBytes(e.layer.size)}`
                      : 'no changes (no layer)') +
                      (e.added.length || e.removed.length
                        ? ` (+${e.added.length} -${e.removed.length} packages)`
                        : ''),
                  );
                  break;
                case 'write':
                  if (partial) output(Buffer.from('\n'));
                  steps.start('writing the image and its SBOMs');
                  break;
                case 'output':
                  output(e.chunk);
                  break;
                case 'debs':
                  log(
                    `  ${e.from !== undefined ? `fetched from cache ${e.from}` : e.cached ? 'cached' : `built in ${e.seconds.toFixed(1)}s`} ${e.source}: ${e.files.join(' ')}`,
                  );
                  break;
                case 'base-moved':
                  log(
                    `strata: note: ${e.loc.file}:${e.loc.line}:${e.loc.column}: base ${e.ref} moved from ${e.from} to ${e.to}`,
                  );
                  break;
                case 'warning':
                  log(
                    `strata: warning: ${e.loc ? `${e.loc.file}:${e.loc.line}:${e.loc.column}: ` : ''}${e.message}`,
                  );
                  break;
              }
            },
          }),
        );
        tagged = r.refs?.join(', ');
        // A signal that came after the engine's last look is still not a success.
        if (ctx.interrupted) throw new StrataError('INTERRUPTED', 'build interrupted');
        steps.end();
        progress.done();
        for (const ref of r.refs ?? (r.ref !== undefined ? [r.ref] : []))
          movedTagNote(ctx, ref, before.get(ref), r.descriptor.digest);
        const secs = (Date.now() - started) / 1000;
        if (ctx.json) {
          ctx.printJson({
            ref: r.ref,
            refs: r.refs ?? [],
            digest: r.descriptor.digest,
            layers: r.manifest.layers,
            cacheHits: r.cacheHits,
            stepsRun: r.stepsRun,
            lockFile: r.lockFile,
            lockWritten: r.lockWritten ?? false,
            seconds: secs,
            steps: r.steps,
            ...(r.debs ? { debs: r.debs } : {}),
            ...(r.platforms
              ? {
                  platforms: r.platforms.map((p) => ({
                    platform: formatPlatform(p.platform),
                    digest: p.descriptor.digest,
                    lockFile: p.lockFile,
                    lockWritten: p.lockWritten ?? false,
                  })),
                }
              : {}),
          });
        } else if (r.platforms) {
          ctx.print(
            `built ${r.refs?.join(', ') ?? '(untagged)'} ${r.descriptor.digest} (${r.platforms.map((p) => formatPlatform(p.platform)).join(', ')}; ${counted(r.stepsRun, 'step')} run, ${r.cacheHits} cached, ${secs.toFixed(1)}s)`,
          );
        } else {
          ctx.print(
            `built ${r.refs?.join(', ') ?? '(untagged)'} ${r.descriptor.digest} (${counted(r.manifest.layers.length, 'layer')}, ${counted(r.stepsRun, 'step')} run, ${r.cacheHits} cached, ${secs.toFixed(1)}s)`,
          );
        }
      } catch (e) {
        if (partial) output(Buffer.from('\n'));
        // A step the user stopped did not fail: its line says so.
        steps.end(ctx.interrupted ? 'interrupted' : 'failed');
        progress.done();
        if (ctx.interrupted)
          throw new StrataError(
            'INTERRUPTED',
            tagged !== undefined
              ? `build interrupted after it tagged ${tagged}`
              : 'build interrupted; nothing was tagged',
          );
        // Quiet hid the step's output: show its end, so the reason is never lost.
        if (quiet && e instanceof BuildStepError && e.output) {
          for (const line of e.output.split('\n')) ctx.stderr.write(`  | ${line}\n`);
        }
        throw e;
      }
    }),
  );
}

/**
 * One line per step, with how long it took: `[2/3] INSTALL curl: layer 1a2b3c4d5e6f 1.2 MiB
 * (+3 -0 packages) in 4.1s`. On a terminal the step shows its time as it runs (and the unpacking
 * of its base, with bytes and time left), and the line replaces it when it ends; elsewhere only
 * the line is printed.
 */
class StepLines {
  private current?: { text: string; t0: number; bar: Bar; unpack?: Bar };

  constructor(
    private readonly progress: Progress,
    private readonly log: (s: string) => void,
  ) {}

  start(text: string): void {
    this.end();
    this.current = { text, t0: Date.now(), bar: this.progress.timer(text) };
  }

  /** The step's base is being unpacked: a bar with bytes, rate and time left. */
  unpacking(bytes: number, total: number): void {
    if (!this.current) return;
    this.current.unpack ??= this.progress.bar('  unpacking the base', total);
    this.current.unpack.update(bytes, total);
  }

  /** End the step in progress, if any, with what became of it. */
  end(outcome?: string): void {
    const c = this.current;
    if (!c) return;
    this.current = undefined;
    c.unpack?.remove();
    c.bar.remove();
    const secs = formatDuration((Date.now() - c.t0) / 1000);
    // A stopped step took no time to do its work: it was stopped after it.
    const took = outcome === 'interrupted' ? 'after' : 'in';
    this.log(`${stepLine(c.text)}: ${outcome ? `${outcome} ` : ''}${took} ${secs}`);
  }
}
