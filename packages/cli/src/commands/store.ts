import type { Argv, CommandModule } from 'yargs';
import type { Store } from '@strata/store';
import { Annotations, StrataError } from '@strata/oci';
import type { Context, GlobalArgs } from '../context';
import type { Runner } from '../main';
import { counted, formatBytes, movedTagNote, shortDigest } from '../output';

interface TagArgs extends GlobalArgs {
  source: string;
  target: string;
}

interface RmArgs extends GlobalArgs {
  refs: string[];
}

interface GcArgs extends GlobalArgs {
  buildCache: boolean;
  snapshots: boolean;
  aptCache: boolean;
  all: boolean;
  dryRun: boolean;
}

const KIND_NAMES: Record<
  'tags' | 'blobs' | 'build-cache' | 'snapshots' | 'apt-cache' | 'ingest',
  string
> = {
  tags: 'tags',
  blobs: 'blobs',
  'build-cache': 'build cache',
  snapshots: 'snapshots',
  'apt-cache': 'apt caches',
  ingest: 'interrupted',
};

export function storeCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  /** A command without options of its own, that works on the store. */
  const onStore = (
    command: string,
    describe: string,
    fn: (ctx: Context, store: Store) => Promise<void>,
  ): CommandModule<GlobalArgs, GlobalArgs> => ({
    command,
    describe,
    builder: (c) => c,
    handler: run<GlobalArgs>(async (ctx) => fn(ctx, await ctx.store())),
  });
  return y
    .command(
      onStore('ls', 'List the images in the store', async (ctx, store) => {
        const { brokenTagError } = await import('@strata/store');
        const rows = [];
        for (const { ref, descriptor } of await store.list()) {
          // One image that cannot be read (a damaged manifest) is listed as such, not the end
          // of the listing: the others are still there, and it needs its tag to be dropped.
          let size: number | undefined = descriptor.size;
          let error: string | undefined;
          try {
            for (const [, d] of await store.reachable(descriptor))
              if (d.digest !== descriptor.digest) size += d.size;
          } catch (e) {
            const broken = brokenTagError(ref, e);
            if (!(broken instanceof StrataError)) throw e;
            size = undefined;
            error = broken.message;
            ctx.note(`strata: warning: ${broken.message} (hint: ${broken.hint ?? ''})`);
          }
          rows.push({
            ref,
            digest: descriptor.digest,
            mediaType: descriptor.mediaType,
            created: descriptor.annotations?.[Annotations.created],
            ...(size !== undefined ? { size } : {}),
            ...(error !== undefined ? { error } : {}),
          });
        }
        if (ctx.json) {
          ctx.printJson(rows);
          return;
        }
        const w = Math.max(3, ...rows.map((r) => r.ref.length));
        ctx.print(`${'REF'.padEnd(w)}  DIGEST        SIZE`);
        for (const r of rows)
          ctx.print(
            `${r.ref.padEnd(w)}  ${shortDigest(r.digest)}  ${r.size !== undefined ? formatBytes(r.size) : 'damaged'}`,
          );
      }),
    )
    .command(
      'tag <source> <target>',
      'Give an image another tag in the store (docker tag): <source> is a tag or digest',
      (c) =>
        c
          .positional('source', { type: 'string', demandOption: true })
          .positional('target', { type: 'string', demandOption: true }),
      run<TagArgs>(async (ctx, a) => {
        const { normalizeTag } = await import('@strata/store');
        const target = normalizeTag(a.target);
        const store = await ctx.store();
        const desc = await store.resolve(a.source);
        // The source's own tag is not carried over: the entry gets the target's.
        const { [Annotations.refName]: _, ...annotations } = desc.annotations ?? {};
        const before = await store.tag(target, { ...desc, annotations });
        movedTagNote(ctx, target, before?.digest, desc.digest);
        if (ctx.json) ctx.printJson({ ref: target, digest: desc.digest });
        else ctx.print(`tagged ${target} ${desc.digest}`);
      }),
    )
    .command(
      'rm <refs..>',
      'Remove tags from the store, all or none (blobs go with the next gc)',
      (c) => c.positional('refs', { type: 'string', array: true, demandOption: true }),
      run<RmArgs>(async (ctx, a) => {
        const store = await ctx.store();
        const removed = (await store.untagAll(a.refs)).map((r) => ({
          ref: r.ref,
          digest: r.descriptor.digest,
        }));
        if (ctx.json) ctx.printJson(removed);
        else for (const r of removed) ctx.print(`removed ${r.ref} ${r.digest}`);
      }),
    )
    .command(
      'gc',
      'Free what no tagged image uses; say what was kept and why',
      (c) =>
        c
          .option('build-cache', {
            type: 'boolean',
            default: false,
            describe: 'Forget every cached step no tag uses (not only beyond the config limit)',
          })
          .option('snapshots', {
            type: 'boolean',
            default: false,
            describe: 'Drop every unpacked snapshot no tag uses',
          })
          .option('apt-cache', {
            type: 'boolean',
            default: false,
            describe: 'Drop the apt lists, caches and downloaded .debs',
          })
          .option('all', {
            type: 'boolean',
            default: false,
            describe:
              'Also what tagged images use (with --build-cache/--snapshots); alone: the whole build cache, every snapshot and the apt caches',
          })
          .option('dry-run', {
            type: 'boolean',
            default: false,
            describe: 'Report what would be freed; delete nothing',
          }),
      run<GcArgs>(async (ctx, a) => {
        const store = await ctx.store();
        const { collectGarbage } = await import('@strata/compose');
        const r = await collectGarbage(store, {
          buildCache: a.buildCache,
          snapshots: a.snapshots,
          aptCache: a.aptCache,
          all: a.all,
          dryRun: a.dryRun,
        });
        if (ctx.json) {
          ctx.printJson(r);
          return;
        }
        const would = r.dryRun ? 'would free' : 'freed';
        ctx.print(
          `${r.dryRun ? 'dry run: ' : ''}${would} ${formatBytes(r.bytesFreed)} (${r.bytesFreed} bytes)`,
        );
        // -q: only the final line, which here is the sum.
        if (ctx.quiet) return;
        const f = r.freed;
        const lines: Array<[string, { count: number; bytes: number }, string, string]> = [
          ['blobs', f.blobs, 'blob', 'blobs'],
          ['build cache', f.buildCache, 'entry', 'entries'],
          ['snapshots', f.snapshots, 'snapshot', 'snapshots'],
          ['apt caches', f.aptCache, 'directory', 'directories'],
          ['partial downloads', f.partials, 'file', 'files'],
        ];
        for (const [what, fig, one, many] of lines) {
          if (fig.count > 0 || fig.bytes > 0)
            ctx.print(
              `  ${what}: ${fig.count} ${fig.count === 1 ? one : many}, ${formatBytes(fig.bytes)}`,
            );
        }
        if (r.kept.length > 0) ctx.print('kept:');
        for (const k of r.kept) {
          ctx.print(
            `  ${KIND_NAMES[k.kind]}: ${k.count}, ${formatBytes(k.bytes)}: ${k.why} (freed by: ${k.freedBy})`,
          );
        }
      }),
    )
    .command(
      onStore(
        'df',
        'Disk use of the store: tags, blobs, build cache, snapshots, apt caches, what interrupted commands left',
        async (ctx, store) => {
          const { diskUsageReport } = await import('@strata/compose');
          const r = await diskUsageReport(store);
          if (ctx.json) {
            ctx.printJson(r);
            return;
          }
          const table = [
            ['TYPE', 'COUNT', 'LIVE', 'SIZE', 'RECLAIMABLE', 'FREED BY'] as string[],
            ...r.rows.map((row) => [
              KIND_NAMES[row.kind],
              String(row.count),
              String(row.live),
              formatBytes(row.bytes),
              formatBytes(row.reclaimable),
              row.freedBy,
            ]),
          ];
          const widths = table[0]!.map((_, i) => Math.max(...table.map((t) => t[i]!.length)));
          for (const t of table)
            ctx.print(
              t.map((cell, i) => (i === t.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '),
            );
          ctx.print(`total on disk: ${formatBytes(r.totalBytes)} (${r.totalBytes} bytes)`);
        },
      ),
    )
    .command(
      onStore(
        'fsck',
        'Re-hash every blob; exit 1 on any corrupt or missing one',
        async (ctx, store) => {
          const r = await store.fsck();
          if (ctx.json) ctx.printJson({ ok: r.problems.length === 0, ...r });
          else {
            for (const p of r.problems) ctx.print(p);
            ctx.print(
              r.problems.length === 0
                ? `ok: ${counted(r.blobs, 'blob')} verified`
                : `${counted(r.problems.length, 'problem')} in ${counted(r.blobs, 'blob')}`,
            );
          }
          if (r.problems.length > 0) ctx.exitCode = 1;
        },
      ),
    );
}
