import { spawnFilter } from './spawn';
import type { ToolProcess } from './spawn';

/**
 * An xz decompressor (Debian's archive serves some indices only as .xz, which Node cannot
 * read): write the .xz to `stdin`, read the text from `stdout`.
 */
export function xzDecompress(): ToolProcess {
  return spawnFilter('xz', ['-dc']);
}
