import { Readable } from 'node:stream';
import { CorruptError } from '@strata/oci';
import {
  BLOCK,
  checksumOk,
  EntryType,
  isZeroBlock,
  parseNumeric,
  parsePax,
  parseString,
  TarHeader,
} from './format';

/** Receiver of a push parser's events. Body chunks are views into the input: copy to keep. */
export interface TarSink {
  header(h: TarHeader): void;
  /** Body bytes of the current entry (only regular files have bodies). */
  data(chunk: Buffer): void;
  entryEnd(): void;
}

const MAX_EXT_HEADER = 16 * 1024 * 1024;

const enum State {
  Header,
  Data,
  Skip,
  Ext,
  End,
}

const TYPES: Record<number, EntryType | undefined> = {
  0x00: 'file',
  0x30: 'file',
  0x37: 'file', // contiguous file
  0x31: 'link',
  0x32: 'symlink',
  0x33: 'char',
  0x34: 'block',
  0x35: 'dir',
  0x36: 'fifo',
};

/**
 * A synchronous push parser for ustar/PAX/GNU tar streams. Feed it chunks with write(); it
 * calls the sink for every entry. Checksums are verified; malformed or truncated input throws
 * CorruptError. Everything after the end-of-archive marker is ignored.
 */
export class TarParser {
  private state: State = State.Header;
  private readonly hdr = Buffer.alloc(BLOCK);
  private hdrFill = 0;
  private remaining = 0; // body bytes left (Data/Skip/Ext)
  private padding = 0; // padding bytes after the body
  private ext: Buffer[] = [];
  private extType = 0;
  private extSize = 0;
  private globals = new Map<string, Buffer>();
  private local: Map<string, Buffer> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private entries = 0;
  private offset = 0; // of the current header, for messages

  constructor(private readonly sink: TarSink) {}

  /** True once the end-of-archive marker has been seen. */
  get ended(): boolean {
    return this.state === State.End;
  }

  write(chunk: Buffer): void {
    let p = 0;
    const len = chunk.length;
    while (p < len) {
      switch (this.state) {
        case State.End:
          return;
        case State.Header: {
          if (this.hdrFill === 0 && len - p >= BLOCK) {
            this.onHeader(chunk, p);
            p += BLOCK;
          } else {
            const n = Math.min(BLOCK - this.hdrFill, len - p);
            chunk.copy(this.hdr, this.hdrFill, p, p + n);
            this.hdrFill += n;
            p += n;
            if (this.hdrFill === BLOCK) {
              this.hdrFill = 0;
              this.onHeader(this.hdr, 0);
            }
          }
          break;
        }
        case State.Data: {
          if (this.remaining > 0) {
            const n = Math.min(this.remaining, len - p);
            this.sink.data(chunk.subarray(p, p + n));
            this.remaining -= n;
            p += n;
          }
          if (this.remaining === 0) {
            const n = Math.min(this.padding, len - p);
            this.padding -= n;
            p += n;
            if (this.padding === 0) {
              this.state = State.Header;
              this.sink.entryEnd();
            }
          }
          break;
        }
        case State.Skip:
        case State.Ext: {
          // A skipped body or an extended header's: the body, then its padding to the block.
          const n = Math.min(this.remaining + this.padding, len - p);
          const fromBody = Math.min(n, this.remaining);
          const ext = this.state === State.Ext;
          if (ext && fromBody > 0) this.ext.push(Buffer.from(chunk.subarray(p, p + fromBody)));
          this.remaining -= fromBody;
          this.padding -= n - fromBody;
          p += n;
          if (this.remaining === 0 && this.padding === 0) {
            this.state = State.Header;
            if (ext) this.onExtDone();
            else this.sink.entryEnd();
          }
          break;
        }
      }
    }
  }

  /** Signal end of input; throws CorruptError if the archive is incomplete. */
  end(): void {
    if (this.state !== State.End) {
      throw new CorruptError(
        this.state === State.Header && this.hdrFill === 0
          ? `tar: truncated archive: no end-of-archive marker after ${this.entries} entries`
          : `tar: truncated archive: input ends inside entry ${this.entries + 1}`,
      );
    }
  }

  private corrupt(msg: string): CorruptError {
    return new CorruptError(`tar: entry ${this.entries + 1}: ${msg}`);
  }

  private onHeader(b: Buffer, o: number): void {
    if (isZeroBlock(b, o)) {
      // End-of-archive: one zero block is enough for us (GNU tar writes two); ignore the rest.
      this.state = State.End;
      return;
    }
    if (!checksumOk(b, o)) throw this.corrupt('header checksum mismatch');
    const flag = b[o + 156] as number;
    const size = parseNumeric(b, o + 124, 12);
    if (!Number.isSafeInteger(size) || size < 0) throw this.corrupt('invalid size field');
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;

    if (flag === 0x78 || flag === 0x67 || flag === 0x4c || flag === 0x4b) {
      // 'x' PAX, 'g' PAX global, 'L' GNU long name, 'K' GNU long link
      if (size > MAX_EXT_HEADER) throw this.corrupt(`extended header too large (${size} bytes)`);
      this.extType = flag;
      this.extSize = size;
      this.ext = [];
      this.remaining = size;
      this.padding = padding;
      this.state = State.Ext;
      if (size === 0) {
        this.state = State.Header;
        this.onExtDone();
      }
      return;
    }

    let type = TYPES[flag];
    if (type === undefined) {
      throw this.corrupt(`unsupported entry type ${JSON.stringify(String.fromCharCode(flag))}`);
    }
    const magic = b.toString('latin1', o + 257, o + 263);
    const ustar = magic === 'ustar\0';
    let path = parseString(b, o, 100);
    if (ustar) {
      const prefix = parseString(b, o + 345, 155);
      if (prefix !== '') path = `${prefix}/${path}`;
    }
    if (flag === 0 && path.endsWith('/')) type = 'dir'; // old V7 directories
    let linkpath = parseString(b, o + 157, 100);
    const h: TarHeader = {
      path,
      type,
      mode: parseNumeric(b, o + 100, 8),
      uid: parseNumeric(b, o + 108, 8),
      gid: parseNumeric(b, o + 116, 8),
      size,
      mtime: parseNumeric(b, o + 136, 12),
      linkpath,
      devmajor: type === 'char' || type === 'block' ? parseNumeric(b, o + 329, 8) : 0,
      devminor: type === 'char' || type === 'block' ? parseNumeric(b, o + 337, 8) : 0,
      xattrs: {},
    };
    if (this.longName !== undefined) h.path = this.longName;
    if (this.longLink !== undefined) h.linkpath = linkpath = this.longLink;
    this.longName = this.longLink = undefined;
    if (this.globals.size > 0) this.applyPax(h, this.globals);
    if (this.local !== undefined) this.applyPax(h, this.local);
    this.local = undefined;
    for (const k of ['mode', 'uid', 'gid', 'mtime', 'devmajor', 'devminor'] as const) {
      if (!Number.isFinite(h[k])) throw this.corrupt(`invalid ${k} field`);
    }
    h.mode &= 0o7777;
    if (h.path === '') throw this.corrupt('empty path');
    this.entries++;
    this.sink.header(h);
    const bodyBytes = h.size;
    this.remaining = bodyBytes;
    this.padding = (BLOCK - (bodyBytes % BLOCK)) % BLOCK;
    this.state = State.Data;
    if (type !== 'file') {
      // Bodies of non-files carry no content we use; skip them.
      h.size = 0;
      this.state = State.Skip;
    }
    if (bodyBytes === 0) {
      this.state = State.Header;
      this.sink.entryEnd();
    }
  }

  private onExtDone(): void {
    const body = Buffer.concat(this.ext, this.extSize);
    this.ext = [];
    if (this.extType === 0x4c || this.extType === 0x4b) {
      const nul = body.indexOf(0);
      const s = body.toString('utf8', 0, nul < 0 ? body.length : nul);
      if (this.extType === 0x4c) this.longName = s;
      else this.longLink = s;
      return;
    }
    const recs = parsePax(body);
    if (recs === undefined) throw this.corrupt('malformed PAX extended header');
    for (const k of recs.keys()) {
      if (k.startsWith('GNU.sparse.')) throw this.corrupt('sparse files are not supported');
    }
    if (this.extType === 0x67) {
      for (const [k, v] of recs) {
        if (v.length === 0) this.globals.delete(k);
        else this.globals.set(k, v);
      }
    } else {
      this.local = recs;
    }
  }

  private applyPax(h: TarHeader, recs: Map<string, Buffer>): void {
    for (const [k, v] of recs) {
      if (v.length === 0) continue;
      switch (k) {
        case 'path':
          h.path = v.toString('utf8');
          break;
        case 'linkpath':
          h.linkpath = v.toString('utf8');
          break;
        case 'size':
          h.size = paxInt(v, (m) => this.corrupt(m));
          break;
        case 'uid':
          h.uid = paxInt(v, (m) => this.corrupt(m));
          break;
        case 'gid':
          h.gid = paxInt(v, (m) => this.corrupt(m));
          break;
        case 'mtime':
          h.mtime = Math.floor(Number(v.toString('latin1')));
          if (!Number.isFinite(h.mtime)) throw this.corrupt('invalid PAX mtime');
          break;
        default:
          if (k.startsWith('SCHILY.xattr.')) h.xattrs[k.slice('SCHILY.xattr.'.length)] = v;
      }
    }
  }
}

function paxInt(v: Buffer, err: (m: string) => Error): number {
  const s = v.toString('latin1');
  if (!/^[0-9]+$/.test(s)) throw err(`invalid PAX number ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw err(`PAX number out of range ${JSON.stringify(s)}`);
  return n;
}

/** One entry of readTar(): header plus its body, which must be consumed before the next. */
export interface TarEntry {
  readonly header: TarHeader;
  /**
   * The body (regular files only). Iterate it before asking for the next entry; an entry whose
   * body is not consumed is skipped automatically. Chunks may be views into a reused buffer.
   */
  readonly body: AsyncIterable<Buffer>;
}

/**
 * Feed a whole tar stream to `sink` (see {@link TarParser}); the stream is destroyed however the
 * parse ends, so a sink that throws leaves no open layer behind.
 */
export async function parseTarStream(
  stream: Readable | AsyncIterable<Buffer>,
  sink: TarSink,
): Promise<void> {
  const parser = new TarParser(sink);
  try {
    for await (const c of stream) parser.write(c as Buffer);
  } finally {
    (stream as Partial<Readable>).destroy?.();
  }
  parser.end();
}

type Ev = { t: 'h'; h: TarHeader } | { t: 'd'; b: Buffer } | { t: 'e' };

/**
 * Parse a tar stream as an async sequence of entries. Checksums are verified; malformed or
 * truncated input throws CorruptError.
 */
export async function* readTar(
  stream: Readable | AsyncIterable<Buffer>,
): AsyncGenerator<TarEntry, void, undefined> {
  let q: Ev[] = [];
  let qi = 0;
  const parser = new TarParser({
    header: (h) => q.push({ t: 'h', h }),
    data: (b) => q.push({ t: 'd', b }),
    entryEnd: () => q.push({ t: 'e' }),
  });
  const it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let eof = false;
  const next = async (): Promise<Ev | undefined> => {
    while (qi >= q.length) {
      if (eof) return undefined;
      q = [];
      qi = 0;
      const r = await it.next();
      if (r.done) {
        eof = true;
        parser.end();
        continue;
      }
      parser.write(r.value);
    }
    return q[qi++];
  };
  let inBody = false;
  try {
    for (;;) {
      // Skip whatever is left of the previous entry's body.
      while (inBody) {
        const ev = await next();
        if (ev === undefined) break;
        if (ev.t === 'e') inBody = false;
      }
      const ev = await next();
      if (ev === undefined) return;
      if (ev.t !== 'h') throw new CorruptError('tar: parser out of sync');
      inBody = true;
      const body: AsyncIterable<Buffer> = {
        [Symbol.asyncIterator]: () => ({
          next: async (): Promise<IteratorResult<Buffer>> => {
            if (!inBody) return { done: true, value: undefined };
            const e = await next();
            if (e === undefined || e.t === 'e') {
              inBody = false;
              return { done: true, value: undefined };
            }
            if (e.t !== 'd') throw new CorruptError('tar: parser out of sync');
            return { done: false, value: e.b };
          },
        }),
      };
      yield { header: ev.h, body };
    }
  } finally {
    if (!eof) await it.return?.();
  }
}
