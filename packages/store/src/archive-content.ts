import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import {
  Compression,
  ContentSource,
  CorruptError,
  Descriptor,
  DigestMismatchError,
  Image,
  ImageIndex,
  Index,
  NotFoundError,
  Selector,
  SizeMismatchError,
  VerifyingStream,
  assertValid,
  imageOf,
  indexOf,
  parseJson,
  requireManifest,
  resolveManifest,
  sha256,
  validateIndex,
  validateOciLayout,
} from '@strata/oci';
import { ARCHIVE_REFERRERS, isReferrerRecord, referrersIn } from './referrers';

/** Where each file of a tar is: the offset of its data and its size. */
type TarIndex = Map<string, { offset: number; size: number }>;

const BLOCK = 512;

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

function sizeOf(h: Buffer): number {
  const raw = h.subarray(124, 136);
  if ((raw[0] as number) & 0x80) {
    let n = 0;
    for (let i = 1; i < raw.length; i++) n = n * 256 + (raw[i] as number);
    return n;
  }
  const text = field(h, 124, 12).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

/**
 * The regular files of a tar, by name (`./` stripped), read from its headers alone; `complete`
 * when the tar reaches its end-of-archive block. `label` names it in messages.
 */
async function indexTar(
  file: string,
  label: string,
): Promise<{ files: TarIndex; complete: boolean; headers: number }> {
  const out: TarIndex = new Map();
  let complete = false;
  let headers = 0;
  const fh = await fsp.open(file, 'r');
  try {
    const total = (await fh.stat()).size;
    let off = 0;
    let longName: string | undefined;
    const h = Buffer.alloc(BLOCK);
    while (off + BLOCK <= total) {
      const { bytesRead } = await fh.read(h, 0, BLOCK, off);
      if (bytesRead < BLOCK) throw new CorruptError(`${label}: truncated tar header`);
      if (h.every((b) => b === 0)) {
        complete = true;
        break;
      }
      const size = sizeOf(h);
      if (!Number.isSafeInteger(size) || size < 0) throw new CorruptError(`${label}: bad tar size`);
      headers++;
      const type = String.fromCharCode(h[156] as number);
      const data = off + BLOCK;
      if (type === 'x' || type === 'L') {
        const body = Buffer.alloc(size);
        await fh.read(body, 0, size, data);
        if (type === 'L') longName = field(body, 0, size);
        else {
          const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
          if (m) longName = m[1];
        }
      } else {
        const prefix = field(h, 257, 6).startsWith('ustar') ? field(h, 345, 155) : '';
        const short = field(h, 0, 100);
        const name = (longName ?? (prefix ? `${prefix}/${short}` : short)).replace(/^\.\//, '');
        longName = undefined;
        // A file cut short is no file of the archive (its bytes would not verify anyway).
        if ((type === '0' || type === '\0') && data + size <= total)
          out.set(name, { offset: data, size });
      }
      off = data + Math.ceil(size / BLOCK) * BLOCK;
    }
  } finally {
    await fh.close();
  }
  return { files: out, complete, headers };
}

/**
 * An OCI archive (`.tmpl.img`) or OCI image layout directory, opened in place as a backend of
 * the core.
 */
export interface ArchiveLayout {
  /** The archive file or the layout directory. */
  readonly file: string;
  /** The archive's `index.json`. */
  readonly index: ImageIndex;
  readonly content: ContentSource;
  image(d: Descriptor): Image;
  indexOf(d: Descriptor): Index;
  /**
   * The one image the archive holds under `sel`: its only entry when that is an image, or the
   * manifest selectManifest picks from the index it holds.
   */
  selectImage(sel: Selector): Promise<Image>;
}

/**
 * The files of an OCI image layout, by name (`blobs/sha256/<hex>`): the regular files of a tar
 * (an archive), found from its headers and read in place, or of a directory (as `skopeo copy …
 * oci:DIR` and umoci write it).
 */
interface LayoutFiles {
  /** What the layout is, for messages: `archive FILE` or `layout DIR`. */
  readonly what: string;
  /**
   * Whether an archive reaches tar's end-of-archive block: one with tar headers that does not
   * was cut short. Always true of a directory.
   */
  readonly complete: boolean;
  /** The tar headers an archive has (none: it is no tar). */
  readonly headers?: number;
  /** The size of file `name`, undefined when the layout has no such file. */
  size(name: string): Promise<number | undefined>;
  /** The bytes of file `name`, whose size is `size`. */
  open(name: string, size: number): Readable;
}

async function layoutFiles(file: string, label: string): Promise<LayoutFiles> {
  let directory: boolean;
  try {
    directory = (await fsp.stat(file)).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`archive ${label} does not exist`);
    }
    throw e;
  }
  if (directory) {
    return {
      what: `layout ${file}`,
      complete: true,
      size: async (name) => {
        try {
          // A layout holds its own files: a link in it could point anywhere (/etc/shadow), and
          // what it names would be read as the layout's, and quoted in its errors.
          let at = file;
          for (const part of name.split('/')) {
            at = path.join(at, part);
            if ((await fsp.lstat(at)).isSymbolicLink()) {
              throw new CorruptError(
                `layout ${file}: ${path.relative(file, at)} is a symbolic link; a layout being loaded may hold none`,
              );
            }
          }
          const st = await fsp.stat(path.join(file, name));
          return st.isFile() ? st.size : undefined;
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
          throw e;
        }
      },
      open: (name) => createReadStream(path.join(file, name)),
    };
  }
  const { files, complete, headers } = await indexTar(file, label);
  return {
    what: `archive ${label}`,
    complete,
    headers,
    size: async (name) => files.get(name)?.size,
    open: (name, size) => {
      const offset = (files.get(name) as { offset: number }).offset;
      if (size === 0) return Readable.from([]);
      return createReadStream(file, { start: offset, end: offset + size - 1 });
    },
  };
}

/**
 * Open an OCI archive without unpacking it, or an OCI image layout directory: an archive's tar
 * headers are read once, and every blob is then read in place, verified like the store's.
 * `label` names it in messages (`stdin` for an archive spooled from there).
 */
export async function openArchive(file: string, label = file): Promise<ArchiveLayout> {
  const files = await layoutFiles(file, label);
  const sizeOf = async (name: string): Promise<number> => {
    const size = await files.size(name);
    if (size === undefined) throw new NotFoundError(`${files.what} has no ${name}`);
    return size;
  };
  const blobName = (d: Descriptor) => `blobs/sha256/${d.digest.slice('sha256:'.length)}`;
  const openBlob = async (d: Descriptor): Promise<Readable> => {
    const size = await sizeOf(blobName(d));
    if (size !== d.size) throw new SizeMismatchError(d.size, size, `blob ${d.digest}`);
    const verify = new VerifyingStream({ digest: d.digest, size: d.size }, `blob ${d.digest}`);
    const raw = files.open(blobName(d), size);
    raw.on('error', (e) => verify.destroy(e));
    return raw.pipe(verify);
  };
  const readWhole = async (name: string, max: number): Promise<Buffer> => {
    const size = await sizeOf(name);
    if (size > max) throw new CorruptError(`${label}: ${name} is too large`);
    const chunks: Buffer[] = [];
    for await (const c of files.open(name, size)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  };
  const content: ContentSource = {
    readBlob: async (d) => {
      const data = await readWhole(blobName(d), 64 << 20);
      if (data.length !== d.size) throw new SizeMismatchError(d.size, data.length, d.digest);
      const got = sha256(data);
      if (got !== d.digest) throw new DigestMismatchError(d.digest, got, `blob ${d.digest}`);
      return data;
    },
    openBlob,
    // The blob stream is verified; its end (and so the tar's) waits for that check.
    openDecompressed: async (d, c) => decompressBlob(await openBlob(d), c),
    referrers: async (d) => referrersIn(recorded, d.digest),
  };
  if (!files.complete && files.headers === 0) {
    throw new CorruptError(`${label} is not an OCI archive or image layout: it is not a tar`);
  }
  if (!files.complete) {
    throw new CorruptError(
      `${label} is truncated: it ends before the end of its tar, so the archive is incomplete`,
    );
  }
  if (
    (await files.size('oci-layout')) === undefined ||
    (await files.size('index.json')) === undefined
  ) {
    throw new CorruptError(
      `${label} is not an OCI archive or image layout: oci-layout or index.json is missing`,
    );
  }
  const index: ImageIndex = assertValid(
    validateIndex,
    parseJson(await readWhole('index.json', 4 << 20), `${label}: index.json`),
    `${label}: index.json`,
  );
  const attached: ImageIndex | undefined =
    (await files.size(ARCHIVE_REFERRERS)) !== undefined
      ? assertValid(
          validateIndex,
          parseJson(await readWhole(ARCHIVE_REFERRERS, 4 << 20), `${label}: ${ARCHIVE_REFERRERS}`),
          `${label}: ${ARCHIVE_REFERRERS}`,
        )
      : undefined;
  const recorded: ImageIndex = {
    schemaVersion: 2,
    manifests: [...index.manifests, ...(attached?.manifests ?? [])],
  };
  assertValid(
    validateOciLayout,
    parseJson(await readWhole('oci-layout', 4096), `${label}: oci-layout`),
    `${label}: oci-layout`,
  );
  const layout: ArchiveLayout = {
    file,
    index,
    content,
    image: (d) => imageOf(content, d),
    indexOf: (d) => indexOf(content, d),
    selectImage: async (sel) => {
      const images = index.manifests.filter((d) => !isReferrerRecord(d));
      const only = images.length === 1 ? images[0] : undefined;
      const d = only
        ? await resolveManifest(only, sel, (x) => indexOf(content, x).indexManifest(), file)
        : requireManifest({ ...index, manifests: images }, sel, file);
      return imageOf(content, d);
    },
  };
  return layout;
}

/**
 * The decompressed bytes of a verified blob stream, for a source that reads its blobs as streams
 * (an archive, a registry): the output ends only after the decompressor exited cleanly, and it
 * errors when the blob does (a digest mismatch at its EOF), so no tar ends before its blob checked
 * out.
 */
export async function decompressBlob(blob: Readable, c: Compression): Promise<Readable> {
  // The tools load with the first layer read as a tar: pushes, pulls and tags never need them.
  // An error of the blob while they load is kept, not thrown at the process, and rethrown here.
  const early = (): void => undefined;
  blob.on('error', early);
  const { decompressStream } = await import('@strata/tools');
  blob.off('error', early);
  if (blob.errored) throw blob.errored;
  const filter = decompressStream(c);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const fail = (e: unknown) => {
    filter.kill();
    blob.destroy();
    if (!out.destroyed) out.destroy(e as Error);
  };
  blob.on('error', fail);
  filter.stdout.on('error', fail);
  filter.done.catch(fail);
  blob.pipe(filter.stdin);
  filter.stdout.pipe(out, { end: false });
  filter.stdout.on('end', () => {
    filter.done.then(
      () => out.end(),
      () => undefined,
    );
  });
  out.on('close', () => {
    if (!out.writableFinished) fail(new CorruptError('layer read abandoned'));
  });
  return out;
}
