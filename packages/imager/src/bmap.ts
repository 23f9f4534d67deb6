/**
 * The block map of a disk image, in the format of bmap-tools (`bmaptool copy`, version 2.0 of the
 * format, sha256): which blocks hold data and must be written to the device, each run of them
 * with its checksum. A flash with it writes a 4 GiB image that holds 300 MiB of data as 300 MiB,
 * and checks every byte on the way, as Yocto's `wic.bmap` images are flashed.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

export const BMAP_BLOCK_SIZE = 4096;

/** Byte ranges of an image that hold data, merged into runs of whole blocks. */
export class MappedBlocks {
  private readonly spans: Array<[number, number]> = [];

  /** Mark bytes `start` .. `start + length` as data (a block any of them falls in is mapped). */
  add(start: number, length: number): void {
    if (length > 0) this.spans.push([start, start + length]);
  }

  /** The mapped blocks as inclusive `[first, last]` runs, in order, adjacent runs joined. */
  runs(): Array<[number, number]> {
    const blocks = this.spans
      .map(([a, b]): [number, number] => [
        Math.floor(a / BMAP_BLOCK_SIZE),
        Math.ceil(b / BMAP_BLOCK_SIZE) - 1,
      ])
      .sort((x, y) => x[0] - y[0]);
    const out: Array<[number, number]> = [];
    for (const [first, last] of blocks) {
      const prev = out[out.length - 1];
      if (prev !== undefined && first <= prev[1] + 1) prev[1] = Math.max(prev[1], last);
      else out.push([first, last]);
    }
    return out;
  }
}

export interface BmapSummary {
  blocks: number;
  mappedBlocks: number;
}

/**
 * The bmap text of `image` (`imageSize` bytes) with `mapped` as its data: every run is read back
 * from the image and hashed, so the checksums are of the bytes the file holds.
 */
export async function bmapOf(
  image: string,
  imageSize: number,
  mapped: MappedBlocks,
): Promise<{ text: string; summary: BmapSummary }> {
  const blocks = Math.ceil(imageSize / BMAP_BLOCK_SIZE);
  const runs = mapped.runs().filter(([first]) => first < blocks);
  const lines: string[] = [];
  let mappedBlocks = 0;
  for (const [first, rawLast] of runs) {
    const last = Math.min(rawLast, blocks - 1);
    mappedBlocks += last - first + 1;
    const sum = await sha256Of(
      image,
      first * BMAP_BLOCK_SIZE,
      Math.min((last + 1) * BMAP_BLOCK_SIZE, imageSize),
    );
    const range = first === last ? `${first}` : `${first}-${last}`;
    lines.push(`        <Range chksum="${sum}"> ${range} </Range>`);
  }
  const percent = blocks === 0 ? 0 : (mappedBlocks / blocks) * 100;
  const zero = '0'.repeat(64);
  const draft = [
    '<?xml version="1.0" ?>',
    '<!-- The block map of a disk image made by strata image: the blocks that hold data',
    '     (partition table, file system metadata, files). Only these have to be written to',
    '     the device: bmaptool copy IMAGE DEVICE reads this file beside the image. -->',
    '<bmap version="2.0">',
    `    <ImageSize> ${imageSize} </ImageSize>`,
    `    <BlockSize> ${BMAP_BLOCK_SIZE} </BlockSize>`,
    `    <BlocksCount> ${blocks} </BlocksCount>`,
    `    <!-- Mapped: ${percent.toFixed(1)}% of the blocks -->`,
    `    <MappedBlocksCount> ${mappedBlocks} </MappedBlocksCount>`,
    '    <ChecksumType> sha256 </ChecksumType>',
    '    <!-- The checksum of this file, taken with this value all zeros. -->',
    `    <BmapFileChecksum> ${zero} </BmapFileChecksum>`,
    '    <BlockMap>',
    ...lines,
    '    </BlockMap>',
    '</bmap>',
    '',
  ].join('\n');
  const own = createHash('sha256').update(draft).digest('hex');
  return {
    text: draft.replace(`<BmapFileChecksum> ${zero} `, `<BmapFileChecksum> ${own} `),
    summary: { blocks, mappedBlocks },
  };
}

async function sha256Of(file: string, start: number, end: number): Promise<string> {
  const hash = createHash('sha256');
  if (end > start) {
    for await (const chunk of fs.createReadStream(file, {
      start,
      end: end - 1,
      highWaterMark: 1 << 20,
    })) {
      hash.update(chunk as Buffer);
    }
  }
  return hash.digest('hex');
}
