/**
 * Fuzzing of the tar reader behind `template create` (a rootfs tarball from anywhere) and layer
 * apply (a layer from any registry): readTar / TarParser, and unpackLayer, which applies a tar
 * onto a directory. Inputs are real small tars made of entries that try to escape (`..`,
 * absolute paths, symlinks and hardlinks out, writes through a symlink planted before), with
 * bytes flipped, cut or added; the same with header fields changed and the checksum made
 * right again, so that the change gets past the checksum; and random headers.
 *
 * Each must return or throw a StrataError within its bound, and unpackLayer must never change
 * anything outside its target directory: a sibling directory (the symlinks point at it) is
 * compared, entry by entry, before and after every case.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import {
  FUZZ_LONG,
  FUZZ_TIMEOUT_MS,
  anyText,
  fuzzParams,
  mutatedBytes,
  parsesOrThrowsTypedAsync,
} from '@strata/oci/testing';
import { encodeTarHeader, tarPadding, TAR_END } from './entry-writer';
import { BLOCK, encodeHeader, EntryType, TarHeader } from './format';
import { LayerApplier } from './applier';
import { readTar, TarParser } from './reader';
import { unpackLayer } from './unpack';

/** The parent of every target: `outside/` next to them is what must never change. */
const PARENT = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tar-fuzz-'));
const OUTSIDE = path.join(PARENT, 'outside');
/** Targets of finished cases, removed after the tests. */
const TRASH = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-tar-fuzz-done-'));

const PATHS = [
  'a',
  'a/b',
  'a/b/c',
  'a/',
  './a/b',
  'evil/x',
  'evil',
  'abs/x',
  'a/.wh.b',
  '.wh.a',
  'a/.wh..wh..opq',
  '.wh.evil',
  '/a',
  'a/../b',
  '..',
  '../outside/x',
  '.',
  './',
  '//a//b',
  `${OUTSIDE}/x`,
  // Too long for ustar: PAX path records (a deep tree would make each case slow to remove).
  `d/${'f'.repeat(120)}`,
  `${'e'.repeat(160)}/g`,
];
const TARGETS = [
  'a',
  'a/b',
  '../outside',
  '../outside/secret',
  OUTSIDE,
  `${OUTSIDE}/secret`,
  '/',
  '..',
  '.',
  'evil',
  'evil/secret',
  '',
];

const entry = fc.record({
  path: fc.oneof(
    { arbitrary: fc.constantFrom(...PATHS), weight: 6 },
    { arbitrary: anyText(20), weight: 1 },
  ),
  type: fc.oneof(
    { arbitrary: fc.constantFrom<EntryType>('file', 'dir', 'symlink', 'link'), weight: 30 },
    { arbitrary: fc.constantFrom<EntryType>('char', 'block', 'fifo'), weight: 1 },
  ),
  linkpath: fc.oneof(
    { arbitrary: fc.constantFrom(...TARGETS), weight: 6 },
    { arbitrary: anyText(12), weight: 1 },
  ),
  body: fc.uint8Array({ maxLength: 700 }),
  mode: fc.oneof(fc.constantFrom(0o644, 0o755, 0o4755, 0o1777, 0), fc.nat({ max: 0o7777 })),
  uid: fc.oneof(fc.constantFrom(0, 1000, 65534, 2 ** 21 + 1), fc.nat({ max: 2 ** 31 })),
  mtime: fc.oneof(fc.constant(0), fc.nat({ max: 2 ** 33 })),
  xattr: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 30 },
    {
      arbitrary: fc.constantFrom('user.fuzz', 'trusted.overlay.opaque', 'security.capability'),
      weight: 1,
    },
  ),
});
type Entry = typeof entry extends fc.Arbitrary<infer T> ? T : never;

function encode(e: Entry): Buffer {
  const body = e.type === 'file' ? Buffer.from(e.body) : Buffer.alloc(0);
  const h: TarHeader = {
    path: e.path === '' ? 'x' : e.path,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.uid,
    size: body.length,
    mtime: e.mtime,
    linkpath: e.type === 'symlink' || e.type === 'link' ? e.linkpath : '',
    devmajor: e.type === 'char' || e.type === 'block' ? 1 : 0,
    devminor: e.type === 'char' || e.type === 'block' ? 3 : 0,
    xattrs: e.xattr ? { [e.xattr]: Buffer.from('y') } : {},
  };
  return Buffer.concat([encodeTarHeader(h), body, Buffer.alloc(tarPadding(body.length))]);
}

/** A tar of one plain file, which any unpack applies. */
const plainTar = Buffer.concat([
  encode({
    path: 'etc/plain',
    type: 'file',
    mode: 0o644,
    uid: 0,
    body: new Uint8Array(Buffer.from('plain\n')),
    mtime: 1700000000,
    linkpath: '',
    xattr: undefined,
  }),
  TAR_END,
]);

/** A GNU long-name ('L') or long-link ('K') header and its body. */
function gnuLong(flag: 0x4c | 0x4b, name: string): Buffer {
  const body = Buffer.from(`${name}\0`);
  const out = Buffer.alloc(BLOCK + body.length + tarPadding(body.length));
  encodeHeader(out, 0, {
    name: Buffer.from('././@LongLink'),
    mode: 0,
    uid: 0,
    gid: 0,
    size: body.length,
    mtime: 0,
    typeflag: flag,
    devmajor: 0,
    devminor: 0,
  });
  body.copy(out, BLOCK);
  return out;
}

const part = fc.oneof(
  { arbitrary: entry.map(encode), weight: 8 },
  {
    arbitrary: fc
      .tuple(fc.constantFrom<0x4c | 0x4b>(0x4c, 0x4b), fc.constantFrom(...PATHS, ...TARGETS))
      .map(([f, n]) => gnuLong(f, n)),
    weight: 1,
  },
);
/** A well-formed tar of a few entries. */
const validTar = fc
  .array(part, { minLength: 1, maxLength: 6 })
  .map((ps) => Buffer.concat([...ps, TAR_END]));

/** Write the checksum of the header block at `off` (as encodeHeader does). */
function fixChecksum(b: Buffer, off: number): void {
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = off; i < off + BLOCK; i++) sum += b[i] as number;
  const s = sum.toString(8).padStart(6, '0');
  b.write(s, off + 148, 'latin1');
  b[off + 154] = 0;
  b[off + 155] = 0x20;
}

/** Header fields overwritten, in blocks the change keeps valid checksums for. */
const fieldMutated = fc
  .tuple(
    validTar,
    fc.array(
      fc.record({
        block: fc.nat(),
        field: fc.constantFrom(
          [0, 100],
          [100, 8],
          [108, 8],
          [124, 12],
          [136, 12],
          [156, 1],
          [157, 100],
          [257, 8],
          [329, 8],
          [337, 8],
          [345, 155],
        ),
        bytes: fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 12 }),
          fc
            .constantFrom(
              '777777777777',
              '\x80\0\0\0\0\0\0\xff',
              '\xff\xff\xff\xff\xff\xff\xff\xff',
              'x',
              'L',
              'K',
              'g',
              '5',
              '2',
              '1',
              '../../x',
              '/etc/x',
            )
            .map((s) => Buffer.from(s, 'latin1')),
        ),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  )
  .map(([tar, edits]) => {
    const b = Buffer.from(tar);
    const blocks = b.length / BLOCK;
    for (const e of edits) {
      const off = (e.block % blocks) * BLOCK;
      const [start, len] = e.field as [number, number];
      Buffer.from(e.bytes).copy(b, off + start, 0, Math.min(len, e.bytes.length));
      fixChecksum(b, off);
    }
    return b;
  });

/** Random header blocks (checksums right), bodies and an end. */
const randomHeaders = fc
  .array(
    fc.tuple(
      fc.uint8Array({ minLength: BLOCK, maxLength: BLOCK }),
      fc.uint8Array({ maxLength: 1024 }),
    ),
    {
      minLength: 1,
      maxLength: 3,
    },
  )
  .map((hs) =>
    Buffer.concat([
      ...hs.flatMap(([h, body]) => {
        const b = Buffer.from(h);
        fixChecksum(b, 0);
        return [b, Buffer.from(body)];
      }),
      TAR_END,
    ]),
  );

const tarBytes = fc.oneof(
  { arbitrary: validTar, weight: 3 },
  { arbitrary: mutatedBytes(validTar), weight: 3 },
  { arbitrary: fieldMutated, weight: 3 },
  { arbitrary: randomHeaders, weight: 1 },
);

/** The input in chunks of random sizes, as a stream delivers it. */
const chunked = fc
  .tuple(tarBytes, fc.array(fc.integer({ min: 1, max: 2000 }), { maxLength: 6 }))
  .map(([b, cuts]) => {
    const chunks: Buffer[] = [];
    let at = 0;
    for (const c of cuts) {
      if (at >= b.length) break;
      chunks.push(b.subarray(at, at + c));
      at += c;
    }
    if (at < b.length || chunks.length === 0) chunks.push(b.subarray(at));
    return chunks;
  });

/** Everything under `dir`, by path: type, mode, owner, links, size, times and content. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    const abs = path.join(dir, rel);
    const st = fs.lstatSync(abs);
    let what = `${st.mode.toString(8)} ${st.uid}:${st.gid} n${st.nlink} ${st.size} ${st.mtimeMs} ${st.ctimeMs}`;
    if (st.isFile()) what += ` ${createHash('sha256').update(fs.readFileSync(abs)).digest('hex')}`;
    if (st.isSymbolicLink()) what += ` -> ${fs.readlinkSync(abs)}`;
    out.set(rel, what);
    if (st.isDirectory()) for (const n of fs.readdirSync(abs).sort()) walk(path.join(rel, n));
  };
  walk('.');
  return out;
}

describe('tar under fuzzing', () => {
  let before: Map<string, string>;
  beforeAll(() => {
    fs.mkdirSync(path.join(OUTSIDE, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(OUTSIDE, 'secret'), 'secret\n', { mode: 0o640 });
    fs.symlinkSync('secret', path.join(OUTSIDE, 'link'));
    before = snapshot(OUTSIDE);
  });
  afterAll(() => {
    fs.rmSync(PARENT, { recursive: true, force: true });
    // rm(1) removes these trees in a fraction of the time fs.rmSync takes.
    execFileSync('rm', ['-rf', '--one-file-system', TRASH]);
  });

  test(
    'readTar gives entries and bodies, or throws a typed error',
    async () => {
      let read = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(chunked, fc.boolean(), async (chunks, readBodies) => {
          const r = await parsesOrThrowsTypedAsync(async () => {
            for await (const e of readTar(Readable.from(chunks))) {
              let n = 0;
              if (readBodies) for await (const c of e.body) n += c.length;
              if (readBodies && e.header.type === 'file') expect(n).toBe(e.header.size);
            }
          });
          if (r.ok) read++;
          else refused++;
        }),
        fuzzParams('tar reader'),
      );
      expect(read).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );

  /**
   * Applies `chunks` onto a fresh target next to outside/, in which an earlier layer left
   * symlinks that lead out of it, and checks that nothing outside the target changed.
   */
  async function applyInside(
    chunks: Buffer[],
    apply: (root: string) => Promise<unknown>,
  ): Promise<boolean> {
    const root = path.join(PARENT, `root-${cases++}`);
    fs.mkdirSync(root);
    fs.symlinkSync('../outside', path.join(root, 'evil'));
    fs.symlinkSync(OUTSIDE, path.join(root, 'abs'));
    fs.mkdirSync(path.join(root, 'a'));
    try {
      // A bound for a case that makes files, and at times spawns (device nodes, xattrs).
      const r = await parsesOrThrowsTypedAsync(() => apply(root), 5_000);
      // Nothing new next to the target, and nothing changed in outside/.
      expect(fs.readdirSync(PARENT).sort()).toEqual(['outside', path.basename(root)]);
      expect(snapshot(OUTSIDE)).toEqual(before);
      return r.ok;
    } finally {
      // Out of the way now, removed at the end: a removal per case would take most of the time.
      fs.renameSync(root, path.join(TRASH, path.basename(root)));
    }
  }
  let cases = 0;

  /** What unpackLayer does with the tar once decompressed (see applyLayer in unpack.ts). */
  async function applyTar(chunks: Buffer[], root: string): Promise<void> {
    const applier = new LayerApplier(root, new Set());
    const parser = new TarParser(applier);
    try {
      for (const c of chunks) parser.write(c);
      parser.end();
    } catch (e) {
      applier.abort();
      throw e;
    }
    await applier.finish();
  }

  test(
    'the layer applier applies a tar inside its target, or throws a typed error; nothing outside changes',
    async () => {
      let applied = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(chunked, async (chunks) => {
          if (await applyInside(chunks, (root) => applyTar(chunks, root))) applied++;
          else refused++;
        }),
        fuzzParams('tar apply'),
      );
      expect(applied).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );

  // The same through unpackLayer, the entry point, with its decompression worker in between.
  // Fewer cases: after a refused tar the worker is replaced, which takes some 200 ms on a loaded machine.
  test(
    'unpackLayer applies a tar inside its target, or throws a typed error; nothing outside changes',
    async () => {
      let applied = 0;
      await fc.assert(
        fc.asyncProperty(chunked, async (chunks) => {
          const ok = await applyInside(chunks, (root) =>
            unpackLayer(Readable.from(chunks), 'none', root),
          );
          if (ok) applied++;
        }),
        {
          ...fuzzParams<[Buffer[]]>('tar unpack (unpackLayer)', FUZZ_LONG ? 5_000 : 25),
          // So few random cases may all be refused: one plain file always runs the applying path.
          examples: [[[plainTar]]],
        },
      );
      expect(applied).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
