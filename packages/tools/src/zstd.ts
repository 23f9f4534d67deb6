import { spawnFilter, ToolProcess } from './spawn';

/**
 * zstd level 3 in multi-threaded mode (`-T0`).
 *
 * Determinism: zstd's multi-threaded mode splits the input into jobs whose size depends only on
 * the compression level, never on the number of workers, so `-T0` produces byte-identical output
 * on a 2-core CI runner and a 64-core workstation (zstd(1): "results are reproducible
 * irrespective of the number of threads"). We never use `--single-thread`, whose output differs
 * from MT mode, and we pin the level. Output can still change across zstd releases; the blob
 * digest is therefore only reproducible for a given zstd version, while the diffID (of the
 * uncompressed tar) is always reproducible.
 */
export const ZSTD_COMPRESS_ARGS = ['-3', '-T0', '-q', '-c'] as const;

/** Spawn `zstd -3 -T0 -q -c`: write a tar to stdin, read the compressed blob from stdout. */
export function zstdCompress(): ToolProcess {
  return spawnFilter('zstd', ZSTD_COMPRESS_ARGS);
}

/** Spawn `zstd -d -c -q`: write a zstd stream to stdin, read the decompressed bytes from stdout. */
export function zstdDecompress(): ToolProcess {
  return spawnFilter('zstd', ['-d', '-c', '-q']);
}
