import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { applyXattrs } from '@strata/tools';
import { cleanUpper, copyDroppedBy } from './upper';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-upper-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function put(root: string, rel: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), text);
  fs.utimesSync(path.join(root, rel), 0, 0);
}

/**
 * `depth` diff levels over a full bottom that holds `etc/conf`; level `opaqueAt` (if any)
 * makes `etc` opaque. The upper holds a copy-up of `etc/conf` equal to the bottom's.
 */
async function stack(
  depth: number,
  opaqueAt?: number,
): Promise<{ upper: string; lower: string[] }> {
  const lower: string[] = [];
  for (let i = 0; i < depth; i++) {
    const l = path.join(dir, `l${i}`);
    put(l, `etc/step-${i}`, `${i}\n`);
    if (i === opaqueAt)
      await applyXattrs(l, [['etc', { 'trusted.overlay.opaque': Buffer.from('y') }]]);
    lower.push(l);
  }
  const bottom = path.join(dir, 'bottom');
  put(bottom, 'etc/conf', 'same\n');
  lower.push(bottom);
  const upper = path.join(dir, 'upper');
  put(upper, 'etc/conf', 'same\n');
  put(upper, 'etc/new', 'new\n');
  return { upper, lower };
}

describe('cleanUpper on a deep stack', () => {
  test('undoes a copy-up of a file the bottom shows through 60 levels', async () => {
    const { upper, lower } = await stack(60);
    const r = await cleanUpper(upper, lower);
    expect(r.pruned).toBe(1);
    expect(fs.readdirSync(path.join(upper, 'etc'))).toEqual(['new']);
  });

  test('keeps it where an opaque directory in between hides the bottom', async () => {
    const { upper, lower } = await stack(60, 41);
    const r = await cleanUpper(upper, lower);
    expect(r.pruned).toBe(0);
    expect(fs.readdirSync(path.join(upper, 'etc')).sort()).toEqual(['conf', 'new']);
  });
});

test('a COPY to a path no layer keeps is found before it runs; other paths are not', () => {
  expect(copyDroppedBy('/tmp/acme-tool.deb')).toMatchObject({
    pattern: 'tmp/**',
    reason: 'temporary files',
  });
  expect(copyDroppedBy('/tmp/')?.pattern).toBe('tmp/**');
  expect(copyDroppedBy('/var/lib/apt/lists/x')?.pattern).toBe('var/lib/apt/lists/**');
  expect(copyDroppedBy('/var/cache/apt/archives/a.deb')?.pattern).toBe('var/cache/apt/**');
  expect(copyDroppedBy('/opt/acme/', ['/opt/acme/**'])).toMatchObject({
    pattern: '/opt/acme/**',
    reason: 'EXCLUDE',
  });
  for (const kept of ['/opt/acme-tool.deb', '/tmpfiles', '/etc/acme/', '/', '/var/lib/acme/x'])
    expect(copyDroppedBy(kept)).toBeUndefined();
});
