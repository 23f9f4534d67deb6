/**
 * Fuzzing of the .wks reader, the entry point of `strata image disk --wks`: the examples'
 * layouts mutated, layouts of random part/bootloader lines, and random text. readWksFile must
 * return a layout or throw a ParseError; what it returns must lay out (layoutPartitions,
 * sfdiskScript) into whole sectors, or be refused there with a ParseError.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { ParseError } from '@strata/oci';
import {
  FUZZ_TIMEOUT_MS,
  anyText,
  fuzzParams,
  mutatedText,
  parsesOrThrowsTypedAsync,
} from '@strata/oci/testing';
import { MiB, roundUp } from './filesystem';
import { layoutPartitions, sfdiskScript } from './partition-table';
import { Wks, readWksFile } from './wks';

const EXAMPLES = path.join(__dirname, '..', '..', '..', 'examples');
const examples = ['boot/boot.wks', 'boot-arm64/efi.wks', 'boot-arm64/uboot.wks'].map((f) =>
  fs.readFileSync(path.join(EXAMPLES, f), 'utf8'),
);

const PIECES = [
  'part',
  'partition',
  'bootloader',
  ' --source ',
  'rootfs',
  'bootimg-efi',
  'bootimg-partition',
  'rawcopy',
  ' --fstype ',
  'ext4',
  'vfat',
  ' --size ',
  ' --extra-space ',
  ' --overhead-factor ',
  ' --align ',
  ' --offset ',
  ' --label ',
  ' --part-type ',
  ' --uuid ',
  ' --sourceparams ',
  ' --no-table',
  ' --ptable ',
  'gpt',
  'msdos',
  ' --timeout ',
  ' --append ',
  '=',
  '"',
  "'",
  '#',
  '\n',
  '0',
  '1',
  '0.5',
  '99999999999999999999',
  'K',
  'M',
  'G',
  '/',
  '..',
  'file=/x',
  'loader=systemd-boot',
  'fdt=a,fdtdir=b',
  'ef',
  '05',
  'c12a7328-f81f-11d2-ba4b-00a0c93ec93b',
];

const value = fc.oneof(
  fc.constantFrom('0', '1', '8K', '0.5M', '3G', '1024', '1e3', '99999999999999999999', '-1', 'ESP'),
  fc.constantFrom(...PIECES),
  anyText(10),
);
/** Options of a part or bootloader line, each with a value that is often valid. */
const option = fc.oneof(
  fc.constantFrom(
    '--source rootfs',
    '--source rawcopy',
    '--source bootimg-efi',
    '--fstype vfat',
    '--no-table',
    '--sourceparams file=/boot/x',
    '--sourceparams loader=systemd-boot',
    '--part-type ef',
    '--part-type c12a7328-f81f-11d2-ba4b-00a0c93ec93b',
    '--uuid 01234567-89ab-cdef-0123-456789abcdef',
    '--label "a b"',
    '--overhead-factor 1.5',
    '--ptable gpt',
    '--timeout 3',
  ),
  fc
    .tuple(
      fc.constantFrom('size', 'extra-space', 'align', 'offset'),
      fc.oneof(
        fc
          .tuple(
            fc.oneof(
              fc.nat({ max: 9000 }).map(String),
              fc.constantFrom('0', '0.5', '0.001', '1e3', '9'.repeat(30)),
            ),
            fc.constantFrom('', 'K', 'M', 'G', 'k'),
          )
          .map(([n, u]) => `${n}${u}`),
        value,
      ),
    )
    .map(([k, v]) => `--${k} ${v}`),
  fc
    .tuple(
      fc.constantFrom('source', 'fstype', 'sourceparams', 'label', 'part-type', 'ptable', 'bogus'),
      fc.oneof(value, fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty')),
      fc.boolean(),
    )
    .map(([k, v, eq]) => (eq ? `--${k}=${v}` : `--${k} ${v}`)),
);
const partLine = fc
  .tuple(
    fc.constantFrom(
      'part / --source rootfs --fstype ext4',
      'part /boot --source bootimg-partition --fstype vfat',
      'part /data --source rootfs --fstype ext4',
      'part u-boot --source rawcopy --sourceparams file=/u-boot.bin',
      'part',
      'partition /x',
      'bootloader --ptable msdos',
      'bootloader',
    ),
    fc.array(option, { maxLength: 3 }),
  )
  .map(([head, opts]) => [head, ...opts].join(' '));
const randomWks = fc.array(partLine, { minLength: 1, maxLength: 6 }).map((l) => l.join('\n'));

const wksText = fc.oneof(
  { arbitrary: mutatedText(fc.constantFrom(...examples), PIECES), weight: 4 },
  { arbitrary: randomWks, weight: 4 },
  { arbitrary: anyText(120), weight: 1 },
);

/** What layoutPartitions gets from buildDiskImage: a --size rounded to MiB, else content. */
function sizesOf(wks: Wks): number[] {
  return wks.parts.map((p) => (p.size !== undefined ? roundUp(p.size, MiB) : MiB));
}

function expectWholeSectors(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0 || n % 512 !== 0) {
    throw new Error(`${what} is not a whole number of sectors: ${n}`);
  }
}

describe('.wks under fuzzing', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-wks-fuzz-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test(
    'readWksFile returns a layout that lays out in whole sectors, or throws a ParseError',
    async () => {
      const file = path.join(dir, 'layout.wks');
      let parsed = 0;
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(wksText, async (text) => {
          fs.writeFileSync(file, text);
          const r = await parsesOrThrowsTypedAsync(async () => {
            const wks = await readWksFile(file);
            for (const p of wks.parts) {
              for (const k of ['size', 'extraSpace', 'align', 'offset'] as const) {
                const n = p[k];
                if (n !== undefined && !(Number.isSafeInteger(n) && n >= 0)) {
                  throw new Error(`--${k} parsed to ${n}`);
                }
              }
              if (p.align === 0) throw new Error('--align parsed to 0');
            }
            const layout = layoutPartitions(wks, sizesOf(wks), 'arm64', [], file);
            for (const p of layout.partitions) {
              expectWholeSectors(p.start, `start of ${p.mountpoint}`);
              expectWholeSectors(p.size, `size of ${p.mountpoint}`);
            }
            expectWholeSectors(layout.sizeBytes, 'disk size');
            const uuids = wks.parts.map(() => '01234567-89ab-cdef-0123-456789abcdef');
            sfdiskScript(wks, layoutPartitions(wks, sizesOf(wks), 'arm64', uuids, file), 'x');
          });
          if (r.ok) parsed++;
          else {
            refused++;
            expect(r.error).toBeInstanceOf(ParseError);
          }
        }),
        fuzzParams('.wks'),
      );
      expect(parsed).toBeGreaterThan(0);
      expect(refused).toBeGreaterThan(0);
    },
    FUZZ_TIMEOUT_MS,
  );
});
