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
