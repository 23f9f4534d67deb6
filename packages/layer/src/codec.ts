import { PassThrough, Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { Compression, InvalidArgumentError } from '@strata/oci';
import { decompressStream, zstdCompress } from '@strata/tools';

/** A byte filter: write input to `stdin`, read output from `stdout`; `done` settles at exit. */
export interface Filter {
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly done: Promise<void>;
  kill(): void;
}

function inProcess(s: zlib.Gzip | zlib.Gunzip | PassThrough): Filter {
  const done = finished(s);
  done.catch(() => undefined);
  return { stdin: s, stdout: s, done, kill: () => s.destroy() };
}

/**
 * A compressor for `c`. gzip runs in-process with a fixed header (Node's zlib writes mtime 0,
 * no file name, OS = Unix on Linux), level 6; zstd runs as a child process (see @strata/tools).
 */
export function compressor(c: Compression): Filter {
  switch (c) {
    case 'zstd':
      return zstdCompress();
    case 'gzip':
      return inProcess(zlib.createGzip({ level: 6, chunkSize: 256 * 1024 }));
    case 'none':
      return inProcess(new PassThrough({ highWaterMark: 1 << 20 }));
    default:
      throw new InvalidArgumentError(`unknown compression ${JSON.stringify(c)}`);
  }
}

/** A decompressor for `c` (see @strata/tools: one mechanism turns a blob into a tar). */
export function decompressor(c: Compression): Filter {
  return decompressStream(c);
}
