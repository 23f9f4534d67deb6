import type { Argv } from 'yargs';
import { Annotations, StrataError } from '@strata/oci';
import type { GlobalArgs } from '../context';
import type { Runner } from '../main';
import { formatBytes, shortDigest } from '../output';

interface RmArgs extends GlobalArgs {
  refs: string[];
}

interface GcArgs extends GlobalArgs {
  buildCache: boolean;
  snapshots: boolean;
}

export function storeCommands(y: Argv<GlobalArgs>, run: Runner): Argv<GlobalArgs> {
  return y
    .command(
      'ls',
      'List the images in the store',
      (c) => c,
      run<GlobalArgs>(async (ctx) => {
        const store = await ctx.store();
        const rows = [];
        for (const { ref, descriptor } of await store.list()) {
          let size = descriptor.size;
          for (const [, d] of await store.reachable(descriptor))
            if (d.digest !== descriptor.digest) size += d.size;
          rows.push({
            ref,
            digest: descriptor.digest,
            mediaType: descriptor.mediaType,
            created: descriptor.annotations?.[Annotations.created],
            size,
          });
        }
        if (ctx.json) {
          ctx.printJson(rows);
          return;
        }
        const w = Math.max(3, ...rows.map((r) => r.ref.length));
        ctx.print(`${'REF'.padEnd(w)}  DIGEST        SIZE`);
        for (const r of rows)
          ctx.print(`${r.ref.padEnd(w)}  ${shortDigest(r.digest)}  ${formatBytes(r.size)}`);
      }),
    )
    .command(
      'rm <refs..>',
      'Remove tags from the store (blobs go with the next gc)',
      (c) => c.positional('refs', { type: 'string', array: true, demandOption: true }),
      run<RmArgs>(async (ctx, a) => {
        const store = await ctx.store();
        const removed = [];
        for (const ref of a.refs) removed.push({ ref, digest: (await store.untag(ref)).digest });
        if (ctx.json) ctx.printJson(removed);
        else for (const r of removed) ctx.print(`removed ${r.ref} ${r.digest}`);
      }),
    )
    .command(
      'gc',
      'Drop blobs that no tag (or build-cache entry) reaches',
      (c) =>
        c
          .option('build-cache', {
            type: 'boolean',
            default: false,
            describe: 'Also forget the build cache, so its layers can go',
          })
          .option('snapshots', {
            type: 'boolean',
            default: false,
            describe: 'Also drop the unpacked build snapshots',
          }),
      run<GcArgs>(async (ctx, a) => {
        const store = await ctx.store();
        if ((a.buildCache || a.snapshots) && (await store.busy())) {
          throw new StrataError('LOCKED', 'a build is running on this store; try again later');
        }
        const cacheEntries = a.buildCache
          ? await store.removeRoots((n) => n.startsWith('cache-'))
          : 0;
        let snapshotBytes = 0;
        if (a.snapshots) {
          const { Snapshots } = await import('@strata/build');
          snapshotBytes = await new Snapshots(store).prune();
        }
        const r = await store.gc();
        if (ctx.json) ctx.printJson({ ...r, cacheEntries, snapshotBytes });
        else {
          ctx.print(
            `removed ${r.removed} blobs, freed ${formatBytes(r.bytesFreed)} (${r.bytesFreed} bytes)`,
          );
          if (a.buildCache) ctx.print(`forgot ${cacheEntries} build cache entries`);
          if (a.snapshots)
            ctx.print(`dropped build snapshots, freed ${formatBytes(snapshotBytes)}`);
        }
      }),
    )
    .command(
      'fsck',
      'Re-hash every blob; exit 1 on any corrupt or missing one',
      (c) => c,
      run<GlobalArgs>(async (ctx) => {
        const r = await (await ctx.store()).fsck();
        if (ctx.json) ctx.printJson({ ok: r.problems.length === 0, ...r });
        else {
          for (const p of r.problems) ctx.print(p);
          ctx.print(
            r.problems.length === 0
              ? `ok: ${r.blobs} blobs verified`
              : `${r.problems.length} problems in ${r.blobs} blobs`,
          );
        }
        if (r.problems.length > 0) ctx.exitCode = 1;
      }),
    );
}
