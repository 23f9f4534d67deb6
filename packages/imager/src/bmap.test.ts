import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bmapOf, MappedBlocks } from './bmap';

test('mapped bytes become runs of whole blocks, sorted, overlaps and neighbours joined', () => {
  const m = new MappedBlocks();
  m.add(20_000, 1); // block 4
  m.add(0, 4096); // block 0
  m.add(4096, 1); // block 1: joins block 0
  m.add(12_288, 8192); // blocks 3-4: joins block 4, and block 2 stays out
  m.add(40_960, 0); // nothing
  expect(m.runs()).toEqual([
    [0, 1],
    [3, 4],
  ]);
});

test('the bmap: counts, one checksum per run over the file bytes, its own checksum', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bmap-'));
  const image = path.join(dir, 'disk.img');
  // Three blocks and a half; the last run ends at the file's end, not at a whole block.
  const bytes = Buffer.alloc(4096 * 3 + 100, 7);
  fs.writeFileSync(image, bytes);
  const m = new MappedBlocks();
  m.add(0, 1);
  m.add(4096 * 2, 4096 + 100);
  const { text, summary } = await bmapOf(image, bytes.length, m);
  expect(summary).toEqual({ blocks: 4, mappedBlocks: 3 });
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  expect(text).toContain(`<Range chksum="${sha(bytes.subarray(0, 4096))}"> 0 </Range>`);
  expect(text).toContain(`<Range chksum="${sha(bytes.subarray(8192))}"> 2-3 </Range>`);
  const own = /<BmapFileChecksum> ([0-9a-f]{64}) </.exec(text)?.[1] ?? '';
  expect(sha(text.replace(own, '0'.repeat(64)))).toBe(own);
  fs.rmSync(dir, { recursive: true });
});
