import { promises as fsp } from 'node:fs';
import { NoSpaceError } from '@strata/oci';

/** The last few kilobytes a step printed, so that a failure can say why even when quiet. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private bytes = 0;
  /** Whether older output was dropped, so the first kept line may be a line's end only. */
  private cut = false;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes - (this.chunks[0]?.length ?? 0) >= OutputTail.KEEP) {
      this.bytes -= (this.chunks.shift() as Buffer).length;
      this.cut = true;
    }
  }

  /** The last lines, whole (a line cut at the front is dropped). */
  text(): string {
    const lines = Buffer.concat(this.chunks).toString('utf8').trimEnd().split('\n');
    if (this.cut) lines.shift();
    return lines.slice(-OutputTail.LINES).join('\n');
  }

  static readonly KEEP = 8192;
  static readonly LINES = 20;
}

/**
 * The line that says why a step failed: apt's first `E:` line (the later ones are consequences,
 * such as "Sub-process /usr/bin/dpkg returned an error code"), else the last line.
 */
export function failureReason(output: string): string | undefined {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.find((l) => /^E: /.test(l)) ?? lines[lines.length - 1];
}

/**
 * A step's output with the secrets it was given cut out (each value, and its base64, becomes
 * `****`), so that a step that prints one does not put it into the build's output or logs.
 * Holds back the last bytes of each chunk that could begin a secret split across chunks.
 */
export class Redactor {
  private readonly needles: Buffer[];
  private readonly keep: number;
  private held: Buffer = Buffer.alloc(0);

  constructor(values: readonly Buffer[]) {
    // A secret file's trailing newline is not part of the value as a step would print it; its
    // base64 may be of either.
    const trim = (v: Buffer) => Buffer.from(v.toString('latin1').replace(/[\r\n]+$/, ''), 'latin1');
    const all = values
      .flatMap((v) => [v, trim(v)])
      .flatMap((v) => [trim(v), Buffer.from(v.toString('base64'))])
      .filter((v) => v.length > 0);
    this.needles = [...new Map(all.map((b) => [b.toString('hex'), b])).values()].sort(
      (a, b) => b.length - a.length,
    );
    this.keep = Math.max(0, ...this.needles.map((n) => n.length - 1));
  }

  /** The output that is safe to pass on now. */
  push(chunk: Buffer): Buffer {
    if (this.needles.length === 0) return chunk;
    const data = this.redact(Buffer.concat([this.held, chunk]));
    const cut = Math.max(0, data.length - this.keep);
    this.held = data.subarray(cut);
    return data.subarray(0, cut);
  }

  /** The rest, once the step has ended. */
  end(): Buffer {
    const rest = this.held;
    this.held = Buffer.alloc(0);
    return rest;
  }

  private redact(data: Buffer): Buffer {
    let out = data;
    for (const n of this.needles) {
      let at = out.indexOf(n);
      if (at < 0) continue;
      const parts: Buffer[] = [];
      let from = 0;
      while (at >= 0) {
        parts.push(out.subarray(from, at), Redactor.MASK);
        from = at + n.length;
        at = out.indexOf(n, from);
      }
      parts.push(out.subarray(from));
      out = Buffer.concat(parts);
    }
    return out;
  }

  static readonly MASK = Buffer.from('****');
}

/** Free space below which a filesystem counts as full (the larger of this and 1% of it). */
const LOW_SPACE = 16 << 20;

/**
 * A step that failed saying the disk is full, when the filesystem its files go to (the upper
 * dir, in the store's snapshot directory) is in fact full: that directory, as a NoSpaceError. A
 * step that ran out of room elsewhere (a tmpfs of its own) keeps the step's own words.
 */
export async function fullDisk(
  upper: string,
  output: string,
  dir: string,
): Promise<NoSpaceError | undefined> {
  if (!/No space left on device|Disk quota exceeded/i.test(output)) return undefined;
  const s = await fsp.statfs(upper).catch(() => undefined);
  if (s === undefined) return undefined;
  const free = s.bavail * s.bsize;
  return free < Math.max(LOW_SPACE, (s.blocks * s.bsize) / 100) ? new NoSpaceError(dir) : undefined;
}
