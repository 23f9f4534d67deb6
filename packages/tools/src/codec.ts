import { createReadStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { Compression, InvalidArgumentError } from '@strata/oci';
import { gunzipFile } from './gzip-file';
import type { ToolProcess } from './spawn';
import { zstdCompress, zstdDecompress } from './zstd';
import { zstdDecompressFile } from './zstd-file';

function inProcess(s: zlib.Gzip | zlib.Gunzip | PassThrough): ToolProcess {
  const done = finished(s);
  done.catch(() => undefined);
  return { stdin: s, stdout: s, done, kill: () => s.destroy() };
}

/**
 * A compressor for `c`. gzip runs in-process with a fixed header (Node's zlib writes mtime 0,
 * no file name, OS = Unix on Linux), level 6; zstd runs as a child process.
 */
export function compressStream(c: Compression): ToolProcess {
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

/**
 * A decompressor for `c`: write compressed bytes to `stdin`, read the tar from `stdout`; `done`
 * settles when it has finished (rejecting when the input was corrupt).
 */
export function decompressStream(c: Compression): ToolProcess {
  switch (c) {
    case 'zstd':
      return zstdDecompress();
    case 'gzip':
      return inProcess(zlib.createGunzip({ chunkSize: 256 * 1024 }));
    case 'none':
      return inProcess(new PassThrough({ highWaterMark: 1 << 20 }));
    default:
      throw new InvalidArgumentError(`unknown compression ${JSON.stringify(c)}`);
  }
}

/**
 * Decompress a file: zstd, and igzip when installed, read it themselves, so the compressed bytes
 * never pass through Node; otherwise it is read here into {@link decompressStream}. Read the
 * tar from `stdout`; `stdin` takes nothing.
 */
export function decompressFile(file: string, c: Compression): ToolProcess {
  const tool =
    c === 'zstd' ? zstdDecompressFile(file) : c === 'gzip' ? gunzipFile(file) : undefined;
  if (tool !== undefined) return tool;
  const filter = decompressStream(c);
  const input = createReadStream(file, { highWaterMark: 1 << 20 });
  input.on('error', (e) => filter.stdout.destroy(e));
  input.pipe(filter.stdin);
  return {
    stdin: new PassThrough().end(),
    stdout: filter.stdout as Readable,
    done: filter.done,
    kill: () => {
      input.destroy();
      filter.kill();
    },
  };
}
