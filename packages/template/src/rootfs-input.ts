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

/**
 * Tell the compression of a stream from its first bytes. Returns a stream that yields every
 * byte of the input, the peeked ones included.
 */
export async function peekCompression(
  input: Readable,
): Promise<{ compression: Compression; stream: Readable }> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let have = 0;
  let done = false;
  while (have < 4) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    have += r.value.length;
  }
  async function* all(): AsyncGenerator<Buffer> {
    yield* head;
    while (!done) {
      const r = await it.next();
      if (r.done) return;
      yield r.value;
    }
  }
  return {
    compression: sniffCompression(Buffer.concat(head)),
    stream: Readable.from(all(), { objectMode: false }),
  };
}

/** Where a rootfs comes from: a directory, or a tar stream (file or stdin). */
export type RootfsSource =
  | { kind: 'dir'; path: string }
  | { kind: 'tar'; stream: Readable; compression: Compression; label: string };

/** Open `-` (stdin), a directory, or a .tar[.gz|.zst] file. */
export async function openRootfsSource(spec: string, stdin: Readable): Promise<RootfsSource> {
  if (spec === '-') {
    const { compression, stream } = await peekCompression(stdin);
    return { kind: 'tar', stream, compression, label: 'stdin' };
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
