import { Readable } from 'node:stream';
import { CorruptError } from '@strata/oci';
import { checksumOk, paxRecord, parseNumeric } from './format';
import { readTar } from './reader';

function block(fill: (b: Buffer) => void): Buffer {
  const b = Buffer.alloc(512);
  fill(b);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

function header(name: string, type: string, size: number, extra?: (b: Buffer) => void): Buffer {
  return block((b) => {
    b.write(name, 0);
    b.write('0000644', 100);
    b.write('0000000', 108);
    b.write('0000000', 116);
    b.write(size.toString(8).padStart(11, '0'), 124);
    b.write('00000000001', 136);
    b.write(type, 156);
    b.write('ustar  \0', 257, 'latin1'); // GNU magic
    extra?.(b);
  });
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

describe('readTar', () => {
  test('GNU long names, base-256 uid, PAX global and local records, byte-at-a-time input', async () => {
    const longName = 'n'.repeat(300);
    const longBody = Buffer.from(longName + '\0');
    const pax = Buffer.concat([
      paxRecord('uid', '4000000000'),
      paxRecord('SCHILY.xattr.user.a', Buffer.from([0, 1, 10, 255])),
    ]);
    const global = paxRecord('mtime', '1234.5');
    const tar = Buffer.concat([
      header('././@LongLink', 'L', longBody.length),
      longBody,
      pad(longBody.length),
      header('short', '0', 3, (b) => {
        b.fill(0, 108, 116);
        b[108] = 0x80; // base-256 uid 70000
        b.writeUIntBE(70000, 108 + 8 - 6, 6);
      }),
      Buffer.from('abc'),
      pad(3),
      header('g', 'g', global.length),
      global,
      pad(global.length),
      header('x', 'x', pax.length),
      pax,
      pad(pax.length),
      header('second', '0', 0),
      Buffer.alloc(1024),
    ]);
    const chunks = [...tar].map((x) => Buffer.from([x]));
    const got = [];
    for await (const e of readTar(Readable.from(chunks))) {
      const body: Buffer[] = [];
      for await (const c of e.body) body.push(Buffer.from(c));
      got.push({ ...e.header, body: Buffer.concat(body).toString() });
    }
    expect(got[0]).toMatchObject({ path: longName, uid: 70000, body: 'abc', mtime: 1 });
    expect(got[1]).toMatchObject({ path: 'second', uid: 4000000000, mtime: 1234 });
    expect(got[1]?.xattrs['user.a']).toEqual(Buffer.from([0, 1, 10, 255]));
  });

  test('unconsumed bodies are skipped', async () => {
    const tar = Buffer.concat([
      header('a', '0', 600),
      Buffer.alloc(600, 1),
      pad(600),
      header('b', '0', 0),
      Buffer.alloc(1024),
    ]);
    const names = [];
    for await (const e of readTar(Readable.from([tar]))) names.push(e.header.path);
    expect(names).toEqual(['a', 'b']);
  });

  test.each([
    ['truncated body', Buffer.concat([header('a', '0', 600), Buffer.alloc(100)])],
    ['no end marker', Buffer.concat([header('a', '0', 0)])],
    ['bad checksum', Buffer.concat([header('a', '0', 0).fill(0x41, 0, 1), Buffer.alloc(1024)])],
    [
      'bad size',
      Buffer.concat([header('a', '0', 0, (b) => b.write('zzzzzzzzzzz', 124)), Buffer.alloc(1024)]),
    ],
    ['sparse', Buffer.concat([header('a', 'S', 0), Buffer.alloc(1024)])],
  ])('%s throws CorruptError', async (_t, tar) => {
    const run = async (): Promise<void> => {
      for await (const e of readTar(Readable.from([tar]))) for await (const _c of e.body) void _c;
    };
    await expect(run()).rejects.toBeInstanceOf(CorruptError);
  });

  test('parseNumeric handles octal, spaces and base-256', () => {
    expect(parseNumeric(Buffer.from(' 755 \0'), 0, 6)).toBe(0o755);
    const b = Buffer.alloc(12);
    b[0] = 0x80;
    b.writeUIntBE(2 ** 40, 6, 6);
    expect(parseNumeric(b, 0, 12)).toBe(2 ** 40);
  });
});

describe('checksumOk', () => {
  // A name with bytes above 127 (UTF-8), so the unsigned and the signed sums differ.
  const named = (): Buffer => header('caf\u00e9-\u00fc', '0', 0);
  const withSum = (b: Buffer, sum: number): Buffer => {
    const c = Buffer.from(b);
    c.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    return c;
  };
  const sums = (b: Buffer): { unsigned: number; signed: number } => {
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < 512; i++) {
      const x = i >= 148 && i < 156 ? 0x20 : (b[i] as number);
      unsigned += x;
      signed += x > 127 ? x - 256 : x;
    }
    return { unsigned, signed };
  };

  test('accepts the unsigned sum and the historic signed one, and nothing else', () => {
    const b = named();
    const { unsigned, signed } = sums(b);
    expect(signed).not.toBe(unsigned);
    expect(checksumOk(withSum(b, unsigned), 0)).toBe(true);
    expect(checksumOk(withSum(b, signed), 0)).toBe(true);
    expect(checksumOk(withSum(b, unsigned + 1), 0)).toBe(false);
    expect(checksumOk(withSum(b, signed - 256), 0)).toBe(false);
    // at an offset inside a larger buffer
    const at = Buffer.concat([Buffer.alloc(512, 0xff), withSum(b, signed)]);
    expect(checksumOk(at, 512)).toBe(true);
  });
});
