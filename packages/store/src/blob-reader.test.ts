import { promises as fsp } from 'node:fs';
import { DigestMismatchError, NotFoundError, SizeMismatchError, sha256 } from '@strata/oci';
import type { BlobReader } from './blob-reader';
import { Store } from './store';
import { withTempStore } from './testing';

let store: Store;
withTempStore('reader', (t) => ({ store } = t));

/** Bytes that differ from chunk to chunk, so that a chunk sent twice or out of order shows. */
function pattern(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE(i, i);
  return b;
}

/**
 * Send a blob with every write held, letting the oldest go once four are held or none came for
 * half a second (the reader has no buffer left, or the blob ended), so that the reader fills all
 * its buffers between releases however slow the disk is. Gives what was written (copies taken at each write), the
 * most writes held at once, and how many chunks had changed by the time they were let go.
 */
async function sendHeld(
  reader: BlobReader,
): Promise<{ sent: Buffer; most: number; changed: number }> {
  const held: { chunk: Buffer; copy: Buffer; release: () => void }[] = [];
  const copies: Buffer[] = [];
  let most = 0;
  let changed = 0;
  let finished = false;
  const sending = reader
    .pipeTo(
      (chunk) =>
        new Promise<void>((release) => {
          const copy = Buffer.from(chunk);
          copies.push(copy);
          held.push({ chunk, copy, release });
          most = Math.max(most, held.length);
        }),
    )
    .finally(() => (finished = true));
  let seen = 0;
  let since = Date.now();
  while (!finished) {
    await new Promise((r) => setTimeout(r, 5));
    if (copies.length !== seen) [seen, since] = [copies.length, Date.now()];
    if (held.length < 4 && Date.now() - since < 500) continue;
    const oldest = held.shift();
    if (oldest && !oldest.chunk.equals(oldest.copy)) changed++;
    oldest?.release();
  }
  await sending;
  return { sent: Buffer.concat(copies), most, changed };
}

test('sends a blob whole and in order, with up to four writes in flight', async () => {
  const data = pattern(3 * 1024 * 1024 + 12345);
  const { digest } = await store.putBytes(data);
  const reader = await store.openBlobReader(digest, data.length);
  expect(reader.size).toBe(data.length);
  const { sent, most } = await sendHeld(reader);
  expect(sent.equals(data)).toBe(true);
  expect(most).toBe(4);
  await expect(reader.pipeTo(async () => undefined)).rejects.toThrow('already sent');
});

test('a buffer is not read into again while its write is pending', async () => {
  const data = pattern(2 * 1024 * 1024);
  const { digest } = await store.putBytes(data);
  const { sent, changed } = await sendHeld(await store.openBlobReader(digest));
  expect(changed).toBe(0);
  expect(sent.equals(data)).toBe(true);
});

test('an empty blob is verified and sends nothing', async () => {
  const { digest } = await store.putBytes(Buffer.alloc(0));
  const writes: Buffer[] = [];
  await (await store.openBlobReader(digest, 0)).pipeTo(async (c) => void writes.push(c));
  expect(writes).toEqual([]);
  await fsp.writeFile(store.blobPath(digest), '');
  const wrong = sha256('not empty');
  await fsp.writeFile(store.blobPath(wrong), '');
  await expect(
    (await store.openBlobReader(wrong)).pipeTo(async () => undefined),
  ).rejects.toBeInstanceOf(DigestMismatchError);
});

test('a damaged blob fails before its last chunk is written', async () => {
  const data = pattern(1024 * 1024 + 7);
  const { digest } = await store.putBytes(data);
  const bad = Buffer.from(data);
  bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0xff;
  await fsp.writeFile(store.blobPath(digest), bad);
  let written = 0;
  await expect(
    (await store.openBlobReader(digest, data.length)).pipeTo(async (c) => {
      written += c.length;
    }),
  ).rejects.toBeInstanceOf(DigestMismatchError);
  expect(written).toBe(data.length - 7);
});

test('size and presence are checked when the blob is opened', async () => {
  const data = Buffer.from('some bytes');
  const { digest } = await store.putBytes(data);
  await expect(store.openBlobReader(digest, 3)).rejects.toBeInstanceOf(SizeMismatchError);
  await expect(store.openBlobReader(sha256('absent'))).rejects.toBeInstanceOf(NotFoundError);
});

test('a file that shrinks after it was opened is a size mismatch', async () => {
  const data = pattern(600 * 1024);
  const { digest } = await store.putBytes(data);
  const reader = await store.openBlobReader(digest, data.length);
  await fsp.truncate(store.blobPath(digest), 1000);
  await expect(reader.pipeTo(async () => undefined)).rejects.toBeInstanceOf(SizeMismatchError);
});

test('a failing write ends the send with its error', async () => {
  const data = pattern(2 * 1024 * 1024);
  const { digest } = await store.putBytes(data);
  let n = 0;
  const reader = await store.openBlobReader(digest);
  await expect(
    reader.pipeTo(async () => {
      const me = ++n;
      await new Promise((r) => setTimeout(r, 5));
      if (me === 2) throw new Error('socket gone');
    }),
  ).rejects.toThrow('socket gone');
  // Four writes were in flight when the second failed; no more than one other began after it.
  expect(n).toBeLessThanOrEqual(5);
});

test('close releases a reader that was never sent', async () => {
  const { digest } = await store.putBytes(Buffer.from('unsent'));
  const reader = await store.openBlobReader(digest);
  await reader.close();
  await reader.close();
  await expect(reader.pipeTo(async () => undefined)).rejects.toThrow('already sent');
});
