import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { Compression, InvalidArgumentError, NotFoundError } from '@strata/oci';

const GZIP = Buffer.from([0x1f, 0x8b]);
const ZSTD = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** Tell gzip, zstd and plain tar apart by their first bytes. */
export function sniffCompression(head: Buffer): Compression {
  if (head.subarray(0, 2).equals(GZIP)) return 'gzip';
  if (head.subarray(0, 4).equals(ZSTD)) return 'zstd';
  return 'none';
}

/** Peek at the first bytes of a stream without losing them. */
export async function peekCompression(stream: Readable): Promise<Compression> {
  const chunks: Buffer[] = [];
  let have = 0;
  stream.pause();
  while (have < 4) {
    const c = await new Promise<Buffer | null>((resolve, reject) => {
      const onReadable = () => {
        cleanup();
        resolve(stream.read() as Buffer | null);
      };
      const onEnd = () => {
        cleanup();
        resolve(null);
      };
      const onError = (e: Error) => {
        cleanup();
        reject(e);
      };
      const cleanup = () => {
        stream.off('readable', onReadable);
        stream.off('end', onEnd);
        stream.off('error', onError);
      };
      const ready = stream.read() as Buffer | null;
      if (ready !== null) return resolve(ready);
      if (stream.readableEnded) return resolve(null);
      stream.once('readable', onReadable);
      stream.once('end', onEnd);
      stream.once('error', onError);
    });
    if (c === null) break;
    chunks.push(c);
    have += c.length;
  }
  const head = Buffer.concat(chunks);
  if (head.length > 0) stream.unshift(head);
  return sniffCompression(head);
}

/** Where a rootfs comes from: a directory, or a tar stream (file or stdin). */
export type RootfsSource =
  | { kind: 'dir'; path: string }
  | { kind: 'tar'; stream: Readable; compression: Compression; label: string };

/** Open `-` (stdin), a directory, or a .tar[.gz|.zst] file. */
export async function openRootfsSource(spec: string, stdin: Readable): Promise<RootfsSource> {
  if (spec === '-') {
    return {
      kind: 'tar',
      stream: stdin,
      compression: await peekCompression(stdin),
      label: 'stdin',
    };
  }
  let st;
  try {
    st = await fsp.stat(spec);
  } catch {
    throw new NotFoundError(`rootfs ${spec} does not exist`);
  }
  if (st.isDirectory()) return { kind: 'dir', path: path.resolve(spec) };
  if (!st.isFile())
    throw new InvalidArgumentError(`rootfs ${spec} is neither a directory nor a tar file`);
  const fh = await fsp.open(spec, 'r');
  const head = Buffer.alloc(4);
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  return {
    kind: 'tar',
    stream: createReadStream(spec, { highWaterMark: 1 << 20 }),
    compression: sniffCompression(head),
    label: path.basename(spec),
  };
}
