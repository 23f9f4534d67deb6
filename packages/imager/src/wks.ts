/**
 * A subset of wic's kickstart (.wks) format: the layout of a partitioned disk image.
 *
 *   part <mountpoint> [--source rootfs|bootimg-efi|bootimg-partition|rawcopy]
 *        [--fstype ext4|vfat] [--size N] [--extra-space N] [--label L] [--align KiB]
 *        [--offset KiB] [--no-table] [--part-type T] [--uuid U] [--sourceparams k=v,…]
 *        [--overhead-factor F]
 *   bootloader --ptable gpt|msdos [--timeout S] [--append "kernel args"]
 *
 * Sizes take K, M or G suffixes and default to MiB, as in wic; --align and --offset are in KiB,
 * and --offset also takes S for 512-byte sectors.
 * A rawcopy part may be named instead of mounted (`part u-boot --source rawcopy …`). Unknown
 * commands and options are errors that name file:line:column. See docs/image.md.
 */
import { InvalidArgumentError, NotFoundError, ParseError } from '@strata/oci';

export type FsType = 'ext4' | 'vfat';
export type PartSource = 'rootfs' | 'bootimg-efi' | 'bootimg-partition' | 'rawcopy';
const SOURCES: readonly PartSource[] = ['rootfs', 'bootimg-efi', 'bootimg-partition', 'rawcopy'];

/** The `--sourceparams` keys each source takes; the first listed for rawcopy is required. */
const SOURCE_PARAMS: Record<PartSource, readonly string[]> = {
  rootfs: [],
  'bootimg-efi': ['loader'],
  'bootimg-partition': ['files', 'fdt', 'fdtdir'],
  rawcopy: ['file'],
};

/** One `part` line. */
export interface WksPart {
  /**
   * Where the partition is mounted ('/', '/boot/efi', …); wic's first argument. For rawcopy it
   * may be a plain name ('u-boot') or empty.
   */
  mountpoint: string;
  /**
   * What fills it: a subtree of the rootfs, an EFI system partition, a U-Boot boot partition
   * (kernel, initrd, named files, extlinux.conf), or the bytes of one file; none: empty.
   */
  source?: PartSource;
  /** Exact start in bytes, instead of the next `align` boundary. */
  offset?: number;
  /** Reserve the space but leave it out of the partition table (wic's --no-table). */
  noTable: boolean;
  /** Filesystem; none with no source leaves the partition unformatted. */
  fstype?: FsType;
  /** Minimum size in bytes. */
  size?: number;
  /** Free space added on top of the content, bytes (wic default 10 MiB). */
  extraSpace?: number;
  /** Content size is multiplied by this before extra space is added (wic default 1.3). */
  overheadFactor?: number;
  label?: string;
  /** Start alignment in bytes (default 1 MiB). */
  align?: number;
  /** GPT type GUID or MBR type byte (hex); defaults follow fstype and mountpoint. */
  partType?: string;
  /** GPT partition UUID; derived from the image otherwise. */
  uuid?: string;
  /** `--sourceparams` key=value pairs. */
  sourceParams: Record<string, string>;
  /** Line in the .wks, for messages. */
  line: number;
  /** Columns of the line's command and of some options' values, for messages. */
  columns?: { part: number; mountpoint?: number; source?: number; sourceparams?: number };
}

export interface WksBootloader {
  ptable: 'gpt' | 'msdos';
  timeout?: number;
  /** Kernel command line added by bootimg-efi. */
  append?: string;
  line: number;
}

export interface Wks {
  parts: WksPart[];
  bootloader: WksBootloader;
}

export type WksResult = { ok: true; value: Wks } | { ok: false; errors: ParseError[] };

interface Token {
  text: string;
  col: number;
}

/** Split a line shell-style: whitespace separates, '…' and "…" quote. */
function tokenize(line: string): Token[] | string {
  const out: Token[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i] as string)) i++;
    if (i >= line.length || line[i] === '#') break;
    const col = i + 1;
    let text = '';
    while (i < line.length && !/\s/.test(line[i] as string)) {
      const c = line[i] as string;
      if (c === '"' || c === "'") {
        const end = line.indexOf(c, i + 1);
        if (end < 0) return `unterminated ${c} quote at column ${i + 1}`;
        text += line.slice(i + 1, end);
        i = end + 1;
      } else {
        text += c;
        i++;
      }
    }
    out.push({ text, col });
  }
  return out;
}

const SIZE_RE = /^(\d+(?:\.\d+)?)([KMG]?)$/i;
/** wic's --offset also counts in 512-byte sectors (`s` or `S`), as its sizetype("K", True). */
const OFFSET_RE = /^(\d+(?:\.\d+)?)([KMGS]?)$/i;

/** A size in bytes; undefined when `s` is not one, or is too large to count bytes exactly. */
function parseSize(s: string, defaultUnit: 'K' | 'M', sectors = false): number | undefined {
  const m = (sectors ? OFFSET_RE : SIZE_RE).exec(s);
  if (!m) return undefined;
  const unit = (m[2] || defaultUnit).toUpperCase();
  const mul = unit === 'S' ? 512 : unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : 1024 ** 3;
  const n = Math.ceil(Number(m[1]) * mul);
  return Number.isSafeInteger(n) ? n : undefined;
}

const PART_OPTS = new Set([
  'source',
  'fstype',
  'size',
  'extra-space',
  'overhead-factor',
  'label',
  'align',
  'part-type',
  'uuid',
  'sourceparams',
  'offset',
  'no-table',
]);
/** Options that take no value. */
const FLAGS = new Set(['no-table']);
const BOOT_OPTS = new Set(['ptable', 'timeout', 'append']);

/** MBR type bytes of extended partitions (DOS, Windows LBA, Linux). */
const MBR_EXTENDED = new Set([0x05, 0x0f, 0x85]);
/** Entries in the GPT that sfdisk writes. */
const GPT_MAX_PARTS = 128;

/** Parse .wks text. Every problem is reported, each with file:line:column. */
export function parseWks(text: string, file = 'layout.wks'): WksResult {
  const errors: ParseError[] = [];
  const parts: WksPart[] = [];
  let bootloader: WksBootloader | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    const err = (col: number, msg: string): void => {
      errors.push(new ParseError(file, line, col, msg));
    };
    const toks = tokenize(raw);
    if (typeof toks === 'string') {
      err(1, toks);
      return;
    }
    const cmd = toks[0];
    if (cmd === undefined) return;
    const known =
      cmd.text === 'part' || cmd.text === 'partition'
        ? PART_OPTS
        : cmd.text === 'bootloader'
          ? BOOT_OPTS
          : undefined;
    if (known === undefined) {
      err(cmd.col, `unknown command ${JSON.stringify(cmd.text)} (supported: part, bootloader)`);
      return;
    }
    const opts = new Map<string, Token>();
    const positional: Token[] = [];
    for (let i = 1; i < toks.length; i++) {
      const t = toks[i] as Token;
      if (!t.text.startsWith('--')) {
        positional.push(t);
        continue;
      }
      let name = t.text.slice(2);
      let value: Token | undefined;
      const eq = name.indexOf('=');
      if (eq >= 0) {
        value = { text: name.slice(eq + 1), col: t.col + 3 + eq };
        name = name.slice(0, eq);
      }
      if (!known.has(name)) {
        err(
          t.col,
          `unknown option --${name} for ${cmd.text} (supported: ${[...known].map((k) => `--${k}`).join(', ')})`,
        );
        if (
          value === undefined &&
          toks[i + 1] !== undefined &&
          !(toks[i + 1] as Token).text.startsWith('--')
        )
          i++;
        continue;
      }
      if (FLAGS.has(name)) {
        if (value !== undefined) err(t.col, `--${name} takes no value`);
        if (opts.has(name)) err(t.col, `--${name} given twice`);
        opts.set(name, { text: '', col: t.col });
        continue;
      }
      if (value === undefined) {
        value = toks[i + 1];
        if (value === undefined || value.text.startsWith('--')) {
          err(t.col, `--${name} needs a value`);
          continue;
        }
        i++;
      }
      if (opts.has(name)) err(t.col, `--${name} given twice`);
      opts.set(name, value);
    }
    const size = (name: string, unit: 'K' | 'M', sectors = false): number | undefined => {
      const v = opts.get(name);
      if (v === undefined) return undefined;
      const n = parseSize(v.text, unit, sectors);
      if (n === undefined) err(v.col, `--${name}: not a size: ${JSON.stringify(v.text)}`);
      return n;
    };
    if (known === BOOT_OPTS) {
      if (positional[0])
        err(positional[0].col, `unexpected argument ${JSON.stringify(positional[0].text)}`);
      if (bootloader !== undefined)
        err(cmd.col, `a second bootloader line (the first is on line ${bootloader.line})`);
      const pt = opts.get('ptable');
      const ptable = pt?.text ?? 'msdos';
      if (ptable !== 'gpt' && ptable !== 'msdos')
        err(pt?.col ?? cmd.col, `--ptable must be gpt or msdos, not ${JSON.stringify(ptable)}`);
      const to = opts.get('timeout');
      if (to !== undefined && !/^\d+$/.test(to.text))
        err(to.col, '--timeout must be a whole number of seconds');
      bootloader = {
        ptable: ptable === 'gpt' ? 'gpt' : 'msdos',
        timeout: to === undefined ? undefined : Number(to.text),
        append: opts.get('append')?.text,
        line,
      };
      return;
    }
    const src = opts.get('source');
    if (src !== undefined && !SOURCES.includes(src.text as PartSource)) {
      err(src.col, `--source must be ${SOURCES.join(', ')}, not ${JSON.stringify(src.text)}`);
    }
    const rawcopy = src?.text === 'rawcopy';
    const mp = positional[0];
    if (mp === undefined && !rawcopy) {
      err(cmd.col, 'part needs a mountpoint, e.g. `part / --source rootfs --fstype ext4`');
      return;
    }
    if (positional[1])
      err(positional[1].col, `unexpected argument ${JSON.stringify(positional[1].text)}`);
    if (
      mp !== undefined &&
      !(rawcopy && /^[A-Za-z0-9_.-]+$/.test(mp.text) && mp.text !== '..') &&
      (!mp.text.startsWith('/') || mp.text.split('/').includes('..'))
    ) {
      err(
        mp.col,
        `mountpoint must be an absolute path without '..', got ${JSON.stringify(mp.text)}`,
      );
    }
    const fs = opts.get('fstype');
    if (fs !== undefined && fs.text !== 'ext4' && fs.text !== 'vfat') {
      err(fs.col, `--fstype must be ext4 or vfat, not ${JSON.stringify(fs.text)}`);
    }
    let fstype = fs?.text as FsType | undefined;
    if (src?.text === 'bootimg-efi' || src?.text === 'bootimg-partition') {
      if (fstype === undefined) fstype = 'vfat';
      else if (fstype !== 'vfat') err(fs?.col ?? 1, `--source ${src.text} makes a vfat partition`);
    }
    if (rawcopy && fs !== undefined)
      err(fs.col, '--source rawcopy copies a file as it is: it takes no --fstype');
    if (src !== undefined && !rawcopy && fstype === undefined)
      err(src.col, `--source ${src.text} needs --fstype`);
    const sp: Record<string, string> = {};
    const spTok = opts.get('sourceparams');
    const source = src?.text as PartSource | undefined;
    // Own keys only: --source constructor must not find Object's constructor here.
    const allowed =
      source !== undefined && Object.hasOwn(SOURCE_PARAMS, source) ? SOURCE_PARAMS[source] : [];
    if (spTok !== undefined) {
      for (const kv of spTok.text.split(',')) {
        const eq = kv.indexOf('=');
        const k = eq < 0 ? kv : kv.slice(0, eq);
        const v = eq < 0 ? '' : kv.slice(eq + 1);
        if (!allowed.includes(k) || v === '') {
          err(
            spTok.col,
            `--sourceparams: ${JSON.stringify(kv)} is not a key=value that --source ${source ?? '(none)'} takes${allowed.length > 0 ? ` (keys: ${allowed.join(', ')})` : ''}`,
          );
        } else if (k === 'loader' && v !== 'systemd-boot') {
          err(
            spTok.col,
            `--sourceparams: only loader=systemd-boot is supported, got ${JSON.stringify(kv)}`,
          );
        } else sp[k] = v;
      }
    }
    if (rawcopy && sp.file === undefined) {
      err(src?.col ?? cmd.col, '--source rawcopy needs --sourceparams "file=<path in the rootfs>"');
    }
    if (sp.fdt !== undefined && sp.fdtdir !== undefined) {
      err(spTok?.col ?? cmd.col, '--sourceparams: fdt and fdtdir exclude each other');
    }
    const noTable = opts.has('no-table');
    if (noTable && !rawcopy && src !== undefined) {
      err(
        (opts.get('no-table') as Token).col,
        `--no-table is for raw data (--source rawcopy), not --source ${src.text}`,
      );
    }
    if (noTable && mp?.text === '/')
      err((opts.get('no-table') as Token).col, 'the / partition must be in the table');
    const of = opts.get('overhead-factor');
    if (of !== undefined && !(Number(of.text) >= 1))
      err(of.col, '--overhead-factor must be a number ≥ 1');
    const pt = opts.get('part-type');
    if (
      pt !== undefined &&
      !/^([0-9a-f]{1,2}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i.test(
        pt.text,
      )
    ) {
      err(pt.col, '--part-type must be a GPT type GUID or an MBR type byte in hex');
    }
    const uu = opts.get('uuid');
    if (
      uu !== undefined &&
      !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uu.text)
    ) {
      err(uu.col, '--uuid must be a UUID');
    }
    const label = opts.get('label');
    if (label !== undefined && fstype === 'vfat' && !/^[A-Za-z0-9_ -]{1,11}$/.test(label.text)) {
      err(label.col, 'a vfat --label is at most 11 characters of A-Z, 0-9, _, - or space');
    }
    if (label !== undefined && fstype === 'ext4' && Buffer.byteLength(label.text) > 16) {
      err(label.col, 'an ext4 --label is at most 16 bytes');
    }
    const align = size('align', 'K');
    if (align !== undefined && (align === 0 || align % 512 !== 0))
      err(opts.get('align')?.col ?? 1, '--align must be a positive multiple of 512 bytes');
    const offset = size('offset', 'K', true);
    if (offset !== undefined && offset % 512 !== 0)
      err(opts.get('offset')?.col ?? 1, '--offset must be a multiple of 512 bytes');
    if (offset !== undefined && align !== undefined)
      err(opts.get('offset')?.col ?? 1, '--offset places a partition exactly: drop --align');
    parts.push({
      mountpoint: mp?.text ?? '',
      source,
      offset,
      noTable,
      fstype,
      size: size('size', 'M'),
      extraSpace: size('extra-space', 'M'),
      overheadFactor: of === undefined ? undefined : Number(of.text),
      label: label?.text,
      align,
      partType: pt?.text,
      uuid: uu?.text.toLowerCase(),
      sourceParams: sp,
      line,
      columns: { part: cmd.col, mountpoint: mp?.col, source: src?.col, sourceparams: spTok?.col },
    });
  });
  if (parts.length === 0 && errors.length === 0) {
    errors.push(new ParseError(file, 1, 1, 'no part lines: nothing to put on the disk'));
  }
  const seen = new Map<string, number>();
  for (const p of parts) {
    if (p.source === undefined || p.source === 'rawcopy') continue;
    const prev = seen.get(p.mountpoint);
    if (prev !== undefined) {
      errors.push(
        new ParseError(
          file,
          p.line,
          1,
          `mountpoint ${p.mountpoint} is already used on line ${prev}`,
        ),
      );
    }
    seen.set(p.mountpoint, p.line);
  }
  // The partition table decides what a table can hold and what a type looks like; the
  // bootloader line may come after the parts, and without one the table is msdos.
  const ptable = bootloader?.ptable ?? 'msdos';
  for (const p of parts) {
    if (p.partType === undefined) continue;
    const isByte = /^[0-9a-f]{1,2}$/i.test(p.partType);
    if (ptable === 'gpt' && isByte) {
      errors.push(
        new ParseError(file, p.line, 1, `--part-type ${p.partType}: a gpt table takes a type GUID`),
      );
    } else if (ptable === 'msdos' && !isByte) {
      errors.push(
        new ParseError(
          file,
          p.line,
          1,
          `--part-type ${p.partType}: an msdos table takes a type byte`,
        ),
      );
    } else if (ptable === 'msdos' && MBR_EXTENDED.has(parseInt(p.partType, 16))) {
      // The extended partition is strata's to make (see layoutPartitions): one declared here
      // would be an empty container that sfdisk fills with nothing.
      errors.push(
        new ParseError(
          file,
          p.line,
          1,
          `--part-type ${p.partType} is an extended partition; strata makes one itself when an msdos table has more than four partitions`,
        ),
      );
    }
  }
  // sfdisk writes a GPT of 128 entries and drops the rest without a word.
  const inTable = parts.filter((p) => !p.noTable);
  if (ptable === 'gpt' && inTable.length > GPT_MAX_PARTS) {
    errors.push(
      new ParseError(
        file,
        inTable[GPT_MAX_PARTS]?.line ?? 1,
        1,
        `a gpt table holds at most ${GPT_MAX_PARTS} partitions`,
      ),
    );
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { parts, bootloader: bootloader ?? { ptable: 'msdos', line: 0 } } };
}

/**
 * Read and parse a .wks file; throws the first problem (all of them in the message). `option`
 * names where the file was given, for a file that cannot be read.
 */
export async function readWksFile(file: string, option = '--wks'): Promise<Wks> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`${option} ${file}: no such file`, { cause: e });
    if (code === 'EISDIR')
      throw new InvalidArgumentError(`${option} ${file} is a directory, not a .wks file`, {
        cause: e,
      });
    throw e;
  }
  const r = parseWks(text, file);
  if (r.ok) return r.value;
  const [first, ...rest] = r.errors;
  if (rest.length === 0) throw first as ParseError;
  throw new ParseError(
    (first as ParseError).file,
    (first as ParseError).line,
    (first as ParseError).column,
    `${r.errors.map((e) => e.message).join('; ')}`.replace(/^[^:]*:\d+:\d+: /, ''),
  );
}

/** Parse a size argument: a number with an optional K, M or G suffix (MiB by default). */
export function parseSizeArg(s: string, what = 'size'): number {
  const n = parseSize(s, 'M');
  if (n === undefined) throw new InvalidArgumentError(`${what}: not a size: ${JSON.stringify(s)}`);
  return n;
}
