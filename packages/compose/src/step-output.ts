/** The last few kilobytes a step printed, so that a failure can say why even when quiet. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private bytes = 0;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes - (this.chunks[0]?.length ?? 0) >= OutputTail.KEEP) {
      this.bytes -= (this.chunks.shift() as Buffer).length;
    }
  }

  /** The last lines, whole (a line cut at the front is dropped). */
  text(): string {
    const all = Buffer.concat(this.chunks).toString('utf8');
    const lines = all.split('\n');
    if (this.bytes > OutputTail.KEEP) lines.shift();
    return lines.slice(-OutputTail.LINES).join('\n').trimEnd();
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
