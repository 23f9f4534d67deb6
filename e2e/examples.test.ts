/**
 * examples/ are CI inputs: run examples/template/make-template.sh on the minbase fixture.
 */
import * as path from 'node:path';
import {
  cleanupTmp,
  manifestOf,
  minbaseRootfs,
  REPO_ROOT,
  run,
  runOk,
  show,
  SLOW,
  tmpDir,
} from './helpers';

afterAll(cleanupTmp);

it(
  'examples/template/make-template.sh makes, saves and reloads a template with one digest',
  async () => {
    const fx = await minbaseRootfs();
    const store = tmpDir('strata-e2e-store-');
    const out = tmpDir();
    const r = await run(
      'bash',
      [path.join(REPO_ROOT, 'examples/template/make-template.sh'), fx.rootfsTarZst, out],
      {
        env: { STRATA_STORE: store, SOURCE_DATE_EPOCH: undefined },
      },
    );
    expect([r.code, show(r)]).toEqual([0, show(r)]);
    const made = manifestOf(store, 'example/base:1.0').digest;
    expect(manifestOf(store, 'example/base:received').digest).toBe(made);
    const info = JSON.parse(
      (await runOk('skopeo', ['inspect', `oci-archive:${path.join(out, 'example-base.tmpl.img')}`]))
        .stdout,
    ) as { Digest: string };
    expect(info.Digest).toBe(made);
    // The `inspect --json | jq -c .features` step printed the feature list.
    const arrays = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('['))
      .map((l) => (JSON.parse(l) as string[]).sort());
    expect(arrays).toContainEqual(['networking', 'ssh']);
  },
  SLOW,
);
