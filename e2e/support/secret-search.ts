/** Decompression for searching blobs, by magic number, with the system's own tools. */
import { spawnSync } from 'node:child_process';
import { gunzipSync } from 'node:zlib';

/** The decompressed bytes of a zstd or gzip blob, or undefined for anything else. */
export function zstdOrGunzip(data: Buffer): Buffer | undefined {
  if (data.length >= 4 && data.readUInt32LE(0) === 0xfd2fb528) {
    const r = spawnSync('zstd', ['-dc'], { input: data, maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`zstd -dc: ${r.stderr.toString()}`);
    return r.stdout;
  }
  if (data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b) return gunzipSync(data);
  return undefined;
}
