import type { Hash } from 'node:crypto';
import { InvalidArgumentError } from './errors';

// node:crypto takes about 3 ms to load. It is loaded at the first hash, so that commands that
// hash nothing (ls, --help) never load it, and a push has sent its first request by then.
let nodeCrypto: typeof import('node:crypto') | undefined;
function createHash(algorithm: 'sha256'): Hash {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  nodeCrypto ??= require('node:crypto') as typeof import('node:crypto');
  return nodeCrypto.createHash(algorithm);
}

/** A content digest. Only ever built by {@link parseDigest} or {@link Hasher}. */
export type Digest = `sha256:${string}` & { readonly __brand: 'Digest' };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) {
    throw new InvalidArgumentError(`not a valid sha256 digest: ${JSON.stringify(s)}`);
  }
  return s;
}

/** The hex part of a digest, as used in blob paths. */
export function digestHex(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: Buffer | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;
}

/** Incremental sha256 that also counts bytes. */
export class Hasher {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }

  get size(): number {
    return this.bytes;
  }

  digest(): Digest {
    return `sha256:${this.hash.digest('hex')}` as Digest;
  }
}

/** Chain ID per the OCI image spec: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export function chainId(diffIds: readonly Digest[]): Digest | undefined {
  let chain: Digest | undefined;
  for (const d of diffIds) {
    chain = chain === undefined ? d : sha256(`${chain} ${d}`);
  }
  return chain;
}
