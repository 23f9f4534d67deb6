import { Transform, TransformCallback } from 'node:stream';
import { Digest, Hasher } from './digest';
import { DigestMismatchError, SizeMismatchError } from './errors';

/** What a stream of content is expected to hash to and to measure. */
export interface Expected {
  digest?: Digest;
  size?: number;
}

/** Verifies digest and size of everything that flows through it, at EOF. */
export class VerifyingStream extends Transform {
  private readonly hasher = new Hasher();
  constructor(
    private readonly expected: Expected,
    private readonly what: string,
    private readonly hint?: string,
  ) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    if (this.expected.size !== undefined && this.hasher.size > this.expected.size) {
      cb(new SizeMismatchError(this.expected.size, this.hasher.size, this.what));
      return;
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expected.size !== undefined && this.hasher.size !== this.expected.size) {
      cb(new SizeMismatchError(this.expected.size, this.hasher.size, this.what));
      return;
    }
    const d = this.hasher.digest();
    if (this.expected.digest !== undefined && d !== this.expected.digest) {
      cb(new DigestMismatchError(this.expected.digest, d, this.what, { hint: this.hint }));
      return;
    }
    cb();
  }
}
