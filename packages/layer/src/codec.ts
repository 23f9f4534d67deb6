import type { Compression } from '@strata/oci';
import { ToolProcess, compressStream, decompressStream } from '@strata/tools';

/** A byte filter: write input to `stdin`, read output from `stdout`; `done` settles at exit. */
export type Filter = ToolProcess;

/** A compressor for `c` (see compressStream in @strata/tools). */
export function compressor(c: Compression): Filter {
  return compressStream(c);
}

/** A decompressor for `c`: the one mechanism that turns a blob into a tar (@strata/tools). */
export function decompressor(c: Compression): Filter {
  return decompressStream(c);
}
