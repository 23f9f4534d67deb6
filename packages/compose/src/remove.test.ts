import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { statusOfLowers } from './remove';

test('statusOfLowers reads the topmost lower dir that has the dpkg status', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-remove-'));
  try {
    const dirs = ['top', 'mid', 'bottom'].map((n) => path.join(root, n));
    for (const [i, dir] of dirs.entries()) {
      fs.mkdirSync(path.join(dir, 'var/lib/dpkg'), { recursive: true });
      if (i > 0) fs.writeFileSync(path.join(dir, 'var/lib/dpkg/status'), path.basename(dir));
    }
    expect(await statusOfLowers(dirs)).toBe('mid');
    expect(await statusOfLowers(dirs.slice(0, 1))).toBeUndefined();
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
