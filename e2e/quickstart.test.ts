/**
 * The README's first quick-start command, `bash scripts/quickstart.sh`, as a user runs it (minus
 * scripts/setup.sh, which CI has run already): a base template bootstrapped from scratch, a
 * product image on it, inspect, and a flattened rootfs.
 */
import * as path from 'node:path';
import { cleanupTmp, REPO_ROOT, run, show, SLOW, tmpDir } from './helpers';

afterAll(cleanupTmp);

it(
  'scripts/quickstart.sh builds the base and the app and flattens the app',
  async () => {
    const store = tmpDir('strata-e2e-quickstart-');
    const out = path.join(tmpDir(), 'app-rootfs.tar.zst');
    // Run it from elsewhere: the script must not depend on the caller's directory.
    const r = await run('bash', [path.join(REPO_ROOT, 'scripts', 'quickstart.sh')], {
      cwd: tmpDir(),
      env: { STRATA_STORE: store, STRATA_QUICKSTART_SKIP_SETUP: '1', QUICKSTART_OUT: out },
    });
    expect([r.code, show(r)]).toEqual([0, show(r)]);
    expect(r.stdout).toMatch(/^Name: +quickstart-app$/m);
    // Each exclusion rule is listed once, the base's matches and the app's together.
    const rules = r.stdout
      .split('\n')
      .filter((l) => /^ {2}dropped /.test(l))
      .map((l) => l.split(' (')[0]);
    expect(new Set(rules).size).toBe(rules.length);
    expect(r.stdout).toContain(`rootfs of quickstart/app: ${out}`);
    const names = (await run('tar', ['--zstd', '-tf', out])).stdout.split('\n');
    expect(names).toContain('etc/product-release');
    expect(names).toContain('usr/bin/curl');
  },
  SLOW,
);
