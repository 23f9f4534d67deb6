import type { Argv } from 'yargs';
import type { Descriptor } from '@strata/oci';
import type { Store } from '@strata/store';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { counted, formatBytes, movedTagNote, numberCheck, readInputBytes } from '../output';
import { TransferBars } from '../progress';

interface NetArgs extends GlobalArgs {
  jobs: number;
  platform?: string;
  caCert?: string;
  insecure: boolean;
  timeout?: number;
}
interface PushArgs extends NetArgs {
  ref: string;
  target?: string;
  chunkSize?: number;
}
interface PullArgs extends NetArgs {
  source: string;
  tag?: string;
}
interface LoginArgs extends GlobalArgs {
  registry: string;
  username: string;
  passwordStdin: boolean;
  caCert?: string;
  insecure: boolean;
  timeout?: number;
}
interface LogoutArgs extends GlobalArgs {
  registry: string;
}

/** `--platform`: of a multi-platform template, only that platform's rootfs image. */
async function platformOpt(a: { platform?: string }) {
  if (a.platform === undefined) return {};
  const { parsePlatform } = await import('@strata/oci');
  return { platform: parsePlatform(a.platform) };
}

/** The registry's idle timeout, in seconds, when `--timeout` is not given. */
export const DEFAULT_TIMEOUT_SECONDS = 60;

/**
 * `--timeout`: how long a registry (or its token service) may send nothing before the exchange
 * fails (and is retried, within the retries). An idle timeout, so that a slow but moving
 * transfer of a large blob is never cut.
 */
export function timeoutOption<T>(y: Argv<T>): Argv<T> {
  return y.option('timeout', {
    type: 'number',
    describe: `Seconds a registry may send nothing before the request fails (default ${DEFAULT_TIMEOUT_SECONDS})`,
    coerce: numberCheck('--timeout', 'seconds'),
  }) as unknown as Argv<T>;
}

/** The client's `timeoutMs` for a `--timeout` in seconds (its coerce refused the others). */
async function timeoutMs(timeout: number | undefined): Promise<number> {
  if (timeout === undefined) return DEFAULT_TIMEOUT_SECONDS * 1000;
  return Math.max(1, Math.round(timeout * 1000));
}

/**
 * `--insecure` and `--ca-cert` of the commands that reach registries on their way (build's FROM
 * and caches, check's bases, diff's references), as transportOptions reads them.
 */
export function tlsOptions<T>(y: Argv<T>): Argv<T> {
  return y
    .option('insecure', {
      type: 'boolean',
      default: false,
      describe: 'Allow plain http / unverified TLS for registries',
    })
    .option('ca-cert', {
      type: 'string',
      describe: 'Also trust this CA certificate (PEM) for registries',
    }) as unknown as Argv<T>;
}

function netOptions<T>(y: Argv<T>): Argv<T> {
  return timeoutOption(y)
    .option('jobs', {
      alias: 'j',
      type: 'number',
      default: 4,
      describe: 'Blob transfers at once',
      coerce: numberCheck('--jobs', 'count'),
    })
    .option('platform', {
      type: 'string',
      describe:
        "Of a multi-platform template, only this platform's rootfs image (default: every platform)",
    })
    .option('ca-cert', { type: 'string', describe: 'Also trust this CA certificate (PEM) for TLS' })
    .option('insecure', {
      type: 'boolean',
      default: false,
      describe: 'Allow plain http and TLS without verification for this registry',
    }) as unknown as Argv<T>;
}

/**
 * How `FROM <registry>/<repo>[:tag|@digest]` resolves, for `strata build` and `strata check`
 * alike, so that check says stale exactly when a rebuild would take another base: pulled
 * (only the blobs the store lacks) with the command's --insecure/--ca-cert and the saved
 * credentials, then read back from the store.
 */
export function registryResolver(
  store: Store,
  a: { caCert?: string; insecure: boolean; timeout?: number },
): (spec: string) => Promise<Descriptor> {
  return async (spec) => {
    const { parseReference } = await import('@strata/oci');
    const { pull } = await import('@strata/registry');
    const ref = parseReference(spec);
    const r = await pull(store, ref, await transportOptions(a, ref.registry as string));
    return store.resolve(r.tag);
  };
}

export async function transportOptions(
  a: { caCert?: string; insecure: boolean; timeout?: number },
  registry: string,
) {
  const { resolveCredentials } = await import('@strata/registry');
  const timeout = await timeoutMs(a.timeout);
  const credentials = await resolveCredentials(registry);
  return {
    insecure: a.insecure,
    timeoutMs: timeout,
    ...(a.caCert ? { caCert: await readInputBytes('--ca-cert', a.caCert) } : {}),
    ...(credentials ? { credentials } : {}),
  };
}

export function registryCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y
    .command(
      'push <ref> [target]',
      'Push an image to a registry: <ref> [<registry>/<repo>:<tag>]',
      (c) =>
        netOptions(
          c
            .positional('ref', { type: 'string', demandOption: true, describe: 'Local image' })
            .positional('target', { type: 'string', describe: 'Where to push (default: <ref>)' })
            .option('chunk-size', {
              type: 'number',
              describe: 'Upload in PATCH chunks of this many bytes instead of one PUT',
              coerce: numberCheck('--chunk-size', 'count'),
            }),
        ),
      run<PushArgs>(async (ctx, a) => {
        const { parseReference, InvalidArgumentError } = await import('@strata/oci');
        const target = parseReference(a.target ?? a.ref);
        if (!target.registry) {
          throw new InvalidArgumentError(`no registry in ${a.target ?? a.ref}`, {
            hint: 'strata push <ref> <registry>/<repo>:<tag>',
          });
        }
        if (target.tag === undefined && target.digest === undefined && !a.target) {
          target.tag = parseReference(a.ref).tag ?? 'latest';
        }
        // The store opens while the registry client loads and the credentials are looked up.
        const opening = ctx.store();
        const { push } = await import('@strata/registry');
        const progress = ctx.progress();
        const bars = new TransferBars(progress, 'pushing');
        let r;
        try {
          const net = await transportOptions(a, target.registry);
          r = await push(opening, a.ref, target, {
            ...net,
            jobs: a.jobs,
            ...(await platformOpt(a)),
            ...(a.chunkSize ? { chunkSize: a.chunkSize } : {}),
            onEvent: bars.onEvent,
          });
        } finally {
          progress.done();
        }
        if (ctx.json) ctx.printJson({ ref: a.ref, ...r });
        else
          ctx.print(
            `pushed ${a.ref} to ${r.target} ${r.digest} (${counted(r.blobs, 'blob')}: ${r.uploaded} uploaded, ${r.skipped} already there, ${r.mounted} mounted; ${formatBytes(r.bytes)} in ${r.seconds.toFixed(1)}s)`,
          );
      }),
    )
    .command(
      'pull <source>',
      'Pull an image from a registry: <registry>/<repo>[:<tag>|@<digest>]',
      (c) =>
        netOptions(
          c.positional('source', { type: 'string', demandOption: true }).option('tag', {
            alias: 't',
            type: 'string',
            describe: 'Local tag (default: <source>)',
          }),
        ),
      run<PullArgs>(async (ctx, a) => {
        const { parseReference, InvalidArgumentError } = await import('@strata/oci');
        const { pull } = await import('@strata/registry');
        const source = parseReference(a.source);
        if (!source.registry) {
          throw new InvalidArgumentError(`no registry in ${a.source}`, {
            hint: 'strata pull <registry>/<repo>[:<tag>|@<digest>]',
          });
        }
        const progress = ctx.progress();
        const bars = new TransferBars(progress, 'pulling');
        let r;
        try {
          // The store opens (a new one is laid out and fsynced) while the registry is reached.
          const opening = ctx.store(true);
          const net = await transportOptions(a, source.registry);
          r = await pull(opening, source, {
            ...net,
            jobs: a.jobs,
            ...(await platformOpt(a)),
            ...(a.tag ? { tag: a.tag } : {}),
            onEvent: bars.onEvent,
          });
        } finally {
          progress.done();
        }
        movedTagNote(ctx, r.tag, r.movedFrom, r.digest);
        if (ctx.json) ctx.printJson(r);
        else
          ctx.print(
            `pulled ${r.source} as ${r.tag} ${r.digest} (${counted(r.blobs, 'blob')}: ${r.downloaded} downloaded, ${r.present} already here; ${formatBytes(r.bytes)} in ${r.seconds.toFixed(1)}s)`,
          );
      }),
    )
    .command(
      'login <registry>',
      'Save credentials for a registry (in docker config.json format)',
      (c) =>
        timeoutOption(c)
          .positional('registry', { type: 'string', demandOption: true })
          .option('username', { alias: 'u', type: 'string', demandOption: true })
          .option('password-stdin', {
            type: 'boolean',
            default: false,
            describe: 'Read the password from stdin',
          })
          .option('ca-cert', { type: 'string', describe: 'Also trust this CA certificate (PEM)' })
          .option('insecure', { type: 'boolean', default: false }),
      run<LoginArgs>(async (ctx, a) => {
        const { InvalidArgumentError } = await import('@strata/oci');
        const { login } = await import('@strata/registry');
        if (!a.passwordStdin) {
          throw new InvalidArgumentError('give the password on stdin with --password-stdin', {
            hint: 'printf %s "$PASSWORD" | strata login <registry> -u <user> --password-stdin',
          });
        }
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        const password = Buffer.concat(chunks)
          .toString('utf8')
          .replace(/\r?\n$/, '');
        const r = await login(a.registry, a.username, password, {
          insecure: a.insecure,
          timeoutMs: await timeoutMs(a.timeout),
          ...(a.caCert ? { caCert: await readInputBytes('--ca-cert', a.caCert) } : {}),
        });
        if (ctx.json)
          ctx.printJson({
            registry: a.registry,
            file: r.file,
            ...(r.helper ? { helper: `docker-credential-${r.helper}` } : {}),
          });
        else if (r.helper)
          ctx.print(
            `logged in to ${a.registry} (credentials saved by docker-credential-${r.helper}, which ${r.file} names)`,
          );
        else ctx.print(`logged in to ${a.registry} (credentials saved in ${r.file})`);
      }),
    )
    .command(
      'logout <registry>',
      'Forget saved credentials for a registry',
      (c) => c.positional('registry', { type: 'string', demandOption: true }),
      run<LogoutArgs>(async (ctx, a) => {
        const { logout } = await import('@strata/registry');
        const removed = await logout(a.registry);
        if (ctx.json) ctx.printJson({ registry: a.registry, removed });
        else ctx.print(removed ? `logged out of ${a.registry}` : `not logged in to ${a.registry}`);
      }),
    );
}
