/**
 * The store commands end to end: tags, ls, rm, gc, fsck, save and load, STRATA_STORE, and
 * concurrent writers. The save/load round trip uses the minbase template; the rest a tiny rootfs.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CLI,
  blobPath,
  cleanupTmp,
  duBytes,
  isOneLineError,
  makeTinyRootfs,
  manifestOf,
  minbaseRootfs,
  readIndex,
  runOk,
  show,
  SLOW,
  strata,
  strataJson,
  strataOk,
  tmpDir,
} from './helpers';

afterAll(cleanupTmp);

interface LsEntry {
  ref: string;
  digest: string;
}

const refs = (store: string) =>
  readIndex(store)
    .manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'])
    .sort();

async function createTiny(store: string, tag: string, marker = tag): Promise<string> {
  const rootfs = makeTinyRootfs(tmpDir('strata-e2e-tiny-'), marker);
  await strataOk(
    ['template', 'create', rootfs, '-t', tag, '--name', 'tiny', '--compression', 'gzip'],
    {
      store,
    },
  );
  return rootfs;
}

describe('tags', () => {
  it('stores `name` as name:latest and `name:tag` as given; skopeo and umoci read both', async () => {
    const store = tmpDir();
    await createTiny(store, 'base');
    await createTiny(store, 'base:v1', 'other');
    expect(refs(store)).toEqual(['base:latest', 'base:v1']);
    for (const ref of ['base:latest', 'base:v1']) {
      const info = JSON.parse(
        (await runOk('skopeo', ['inspect', `oci:${store}:${ref}`])).stdout,
      ) as {
        Digest: string;
      };
      expect(info.Digest).toBe(manifestOf(store, ref).digest);
      const bundle = path.join(tmpDir(), 'bundle');
      await runOk('umoci', ['unpack', '--image', `${store}:${ref}`, bundle]);
      expect(fs.readFileSync(path.join(bundle, 'rootfs/etc/marker'), 'utf8')).toBe(
        ref === 'base:v1' ? 'other\n' : 'base\n',
      );
    }
    const ls = await strataJson<LsEntry[]>(['ls'], { store });
    expect(ls.map((e) => e.ref).sort()).toEqual(['base:latest', 'base:v1']);
    for (const e of ls) expect(e.digest).toBe(manifestOf(store, e.ref).digest);
    const plain = await strataOk(['ls'], { store });
    expect(plain.stdout).toContain('base:latest');
    expect(plain.stdout).toContain('base:v1');
  });

  it('re-tagging moves the tag and leaves exactly one entry for it', async () => {
    const store = tmpDir();
    await createTiny(store, 'app:1', 'first');
    const first = manifestOf(store, 'app:1').digest;
    await createTiny(store, 'app:1', 'second');
    expect(refs(store)).toEqual(['app:1']);
    expect(manifestOf(store, 'app:1').digest).not.toBe(first);
  });

  it('template create says when it moves a tag from another image (issue 15)', async () => {
    const store = tmpDir();
    const create = (rootfs: string) =>
      strata(['template', 'create', rootfs, '-t', 'app:1', '--name', 'tiny'], { store });
    const r1 = await create(makeTinyRootfs(tmpDir('strata-e2e-tiny-'), 'first'));
    expect(r1.code).toBe(0);
    expect(r1.stderr).toBe('');
    const first = manifestOf(store, 'app:1').digest;
    const r2 = await create(makeTinyRootfs(tmpDir('strata-e2e-tiny-'), 'second'));
    expect(r2.code).toBe(0);
    const second = manifestOf(store, 'app:1').digest;
    expect(second).not.toBe(first);
    const short = (d: string) => d.replace('sha256:', '').slice(0, 12);
    expect(r2.stderr).toBe(`note: tag app:1 moved from ${short(first)} to ${short(second)}\n`);
    expect(r2.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('strata tag gives an image another tag, by tag, digest or the DIGEST column of ls, and says when it moves one', async () => {
    const store = tmpDir();
    await createTiny(store, 'app:1', 'first');
    await createTiny(store, 'app:2', 'second');
    const first = manifestOf(store, 'app:1').digest;
    const second = manifestOf(store, 'app:2').digest;
    const short = (d: string) => d.replace('sha256:', '').slice(0, 12);
    expect((await strataOk(['tag', 'app:1', 'acme/app:stable'], { store })).stdout).toBe(
      `tagged acme/app:stable ${first}\n`,
    );
    expect(manifestOf(store, 'acme/app:stable')).toMatchObject({ digest: first });
    // The ls column, then a whole digest without sha256:, as docker takes an image ID.
    const moved = await strataOk(['tag', short(second), 'acme/app:stable'], { store });
    expect(moved.stderr).toBe(
      `note: tag acme/app:stable moved from ${short(first)} to ${short(second)}\n`,
    );
    await strataOk(['tag', first.slice(7), 'acme/app:old'], { store });
    expect(await strataJson(['tag', `acme/app@${first}`, 'acme/app:old'], { store })).toEqual({
      ref: 'acme/app:old',
      digest: first,
    });
    expect(refs(store)).toEqual(['acme/app:old', 'acme/app:stable', 'app:1', 'app:2']);
    expect(manifestOf(store, 'acme/app:old').digest).toBe(first);
    const missing = await strata(['tag', 'nothere:1', 'x:1'], { store });
    expect(missing.code).toBe(1);
    expect(isOneLineError(missing.stderr)).toBe(true);
    expect(refs(store)).toHaveLength(4);
  });

  it('template create -t a -t b tags the template under both, as docker build does', async () => {
    const store = tmpDir();
    const rootfs = makeTinyRootfs(tmpDir('strata-e2e-tiny-'), 'two');
    const out = await strataJson<{ ref: string; refs: string[]; digest: string }>(
      ['template', 'create', rootfs, '-t', 'two:a', '-t', 'two:b', '--name', 'tiny'],
      { store },
    );
    expect(out.refs).toEqual(['two:a', 'two:b']);
    expect(out.ref).toBe('two:a');
    expect(refs(store)).toEqual(['two:a', 'two:b']);
    expect(manifestOf(store, 'two:a').digest).toBe(out.digest);
    expect(manifestOf(store, 'two:b').digest).toBe(out.digest);
  });

  // build takes several tags, as template create and docker build do.
  it.each([
    ['load', ['load', 'nothing.tmpl.img', '-t', 'x:1', '-t', 'y:1']],
    ['pull', ['pull', 'localhost:1/x:1', '-t', 'x:1', '-t', 'y:1']],
  ])('%s -t a -t b is a usage error (exit 2), not a crash', async (cmd, args) => {
    const store = tmpDir();
    const r = await strata(args, { store });
    expect(r.code).toBe(2);
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain(`-t/--tag given twice; give it once (x:1, y:1)`);
  });

  it('uses $STRATA_STORE when --store is absent', async () => {
    const store = path.join(tmpDir(), 'env-store');
    const rootfs = makeTinyRootfs(tmpDir());
    await strataOk(['template', 'create', rootfs, '-t', 'envtag', '--name', 'tiny'], {
      store: null,
      env: { STRATA_STORE: store },
    });
    expect(refs(store)).toEqual(['envtag:latest']);
    expect(fs.readFileSync(path.join(store, 'oci-layout'), 'utf8')).toMatch(
      /"imageLayoutVersion"\s*:\s*"1.0.0"/,
    );
  });

  it('a command that only reads does not make a store at a mistyped path', async () => {
    const typo = path.join(tmpDir(), 'typo');
    for (const args of [['ls'], ['df'], ['inspect', 'x'], ['gc', '--dry-run'], ['fsck']]) {
      const r = await strata(args, { store: typo });
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `strata: error: no store at ${typo} (hint: give the store with --store DIR or $STRATA_STORE; template create, build, pull and load make one)\n`,
      );
    }
    expect(fs.existsSync(typo)).toBe(false);
    // A command that writes still makes it.
    await createTiny(typo, 'made');
    expect((await strataOk(['ls', '-q'], { store: typo })).code).toBe(0);
  });

  it('a store path that is a file is a clear error', async () => {
    const file = path.join(tmpDir(), 'file');
    fs.writeFileSync(file, '');
    for (const args of [
      ['ls'],
      ['template', 'create', makeTinyRootfs(tmpDir()), '-t', 'a', '--name', 'a'],
    ]) {
      const r = await strata(args, { store: file });
      expect(r.stderr).toBe(`strata: error: store ${file} is a file, not a store directory\n`);
      expect(r.code).toBe(2);
    }
  });

  it('loses no tag when several processes write one store at once', async () => {
    const store = tmpDir();
    const n = 6;
    const rootfses = Array.from({ length: n }, (_, i) => makeTinyRootfs(tmpDir(), `m${i}`));
    const results = await Promise.all(
      rootfses.map((r, i) =>
        strata(
          ['template', 'create', r, '-t', `par:${i}`, '--name', 'par', '--compression', 'gzip'],
          { store },
        ),
      ),
    );
    for (const r of results) expect([r.code, r.stderr]).toEqual([0, '']);
    expect(refs(store)).toEqual(Array.from({ length: n }, (_, i) => `par:${i}`).sort());
    const fsck = await strata(['fsck'], { store });
    expect(fsck.code).toBe(0);
  });
});

describe('rm and gc', () => {
  it('rm drops the tag; gc frees the unreferenced blobs and reports the bytes; shared blobs stay', async () => {
    const store = tmpDir();
    const rootfs = await createTiny(store, 'keep');
    // Same rootfs, another tag: same layer, so the layer blob is shared.
    await strataOk(
      ['template', 'create', rootfs, '-t', 'gone', '--name', 'other', '--compression', 'gzip'],
      {
        store,
      },
    );
    await createTiny(store, 'alone', 'unique content');
    const alone = manifestOf(store, 'alone:latest');

    const rm = await strata(['rm', 'alone'], { store });
    expect(rm.code).toBe(0);
    expect(refs(store)).toEqual(['gone:latest', 'keep:latest']);
    expect((await strataJson<LsEntry[]>(['ls'], { store })).map((e) => e.ref)).not.toContain(
      'alone:latest',
    );
    // Nothing is deleted before gc.
    expect(fs.existsSync(blobPath(store, alone.digest))).toBe(true);

    const before = duBytes(path.join(store, 'blobs'));
    const gc = await strataOk(['gc'], { store });
    const freed = before - duBytes(path.join(store, 'blobs'));
    expect(freed).toBeGreaterThan(0);
    expect(freed).toBeGreaterThanOrEqual(alone.manifest.layers[0]!.size);
    expect(gc.stdout).toContain(String(freed));
    expect(fs.existsSync(blobPath(store, alone.digest))).toBe(false);
    expect(fs.existsSync(blobPath(store, alone.manifest.layers[0]!.digest))).toBe(false);

    await strataOk(['rm', 'gone:latest'], { store });
    const gc2 = await strataJson<{ bytesFreed: number }>(['gc'], { store });
    const keep = manifestOf(store, 'keep:latest');
    // The shared layer is still referenced by keep:latest.
    expect(fs.existsSync(blobPath(store, keep.manifest.layers[0]!.digest))).toBe(true);
    expect(gc2.bytesFreed).toBeGreaterThan(0);
    expect((await strata(['fsck'], { store })).code).toBe(0);
    expect((await strataJson<{ bytesFreed: number }>(['gc'], { store })).bytesFreed).toBe(0);
    expect((await strataOk(['inspect', 'keep'], { store })).stdout).toContain('keep:latest');
  });

  it('load -t notes a tag it moves, as template create and pull do', async () => {
    const store = tmpDir();
    await createTiny(store, 'a', 'first');
    await createTiny(store, 'b', 'second');
    const archive = path.join(tmpDir(), 'a.tmpl.img');
    await strataOk(['save', 'a', '-o', archive], { store });
    const r = await strataOk(['load', archive, '-t', 'b'], { store });
    expect(r.stderr).toMatch(/note: tag b:latest moved from \S+ to \S+/);
    const again = await strataOk(['load', archive, '-t', 'b'], { store });
    expect(again.stderr).not.toContain('moved');
  });

  it('load warns on stderr of a name the archive carries that is not a valid tag, and loads the image untagged', async () => {
    const store = tmpDir();
    await createTiny(store, 'odd');
    const archive = path.join(tmpDir(), 'odd.tmpl.img');
    await strataOk(['save', 'odd', '-o', archive], { store });
    const layout = tmpDir();
    await runOk('tar', ['-xf', archive, '-C', layout]);
    const indexFile = path.join(layout, 'index.json');
    const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    const digest = index.manifests[0]!.digest;
    index.manifests[0]!.annotations['org.opencontainers.image.ref.name'] = '../../evil:1';
    fs.writeFileSync(indexFile, JSON.stringify(index));
    const other = tmpDir();
    const warning = `strata: warning: not tagging ${digest} with the name the archive gives it, "../../evil:1": repository must be lowercase path components of [a-z0-9._-]\n`;
    const r = await strataOk(['load', layout], { store: other });
    expect(r.stdout).toBe(`loaded (untagged) ${digest}\n`);
    expect(r.stderr).toBe(warning);
    const j = await strataOk(['load', layout, '--json'], { store: other });
    expect(JSON.parse(j.stdout)).toEqual([{ digest }]);
    expect(j.stderr).toBe(warning);
  });

  it('gc -q prints only its final line, dry run or not', async () => {
    const store = tmpDir();
    await createTiny(store, 'gone');
    await strataOk(['rm', 'gone'], { store });
    const full = await strataOk(['gc', '--dry-run'], { store });
    expect(full.stdout.trim().split('\n').length).toBeGreaterThan(1);
    for (const args of [
      ['gc', '-q', '--dry-run'],
      ['gc', '-q'],
    ]) {
      const r = await strataOk(args, { store });
      expect(r.stdout).toMatch(/^(dry run: would free|freed) [^\n]*\n$/);
    }
  });

  it('rm of an unknown ref fails with one line', async () => {
    const store = tmpDir();
    await createTiny(store, 'x');
    const r = await strata(['rm', 'nope'], { store });
    expect(r.code).not.toBe(0);
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain('nope');
    expect(refs(store)).toEqual(['x:latest']);
  });

  it('rm resolves every ref first: one missing removes nothing, whatever the order', async () => {
    const store = tmpDir();
    await createTiny(store, 'good:1');
    await strataOk(
      ['template', 'create', makeTinyRootfs(tmpDir(), 'o'), '-t', 'other', '--name', 'o'],
      {
        store,
      },
    );
    for (const args of [
      ['good:1', 'bad'],
      ['bad', 'good:1'],
      ['good:1', 'bad', 'other', 'worse:2'],
    ]) {
      const r = await strata(['rm', ...args], { store });
      expect(r.code).toBe(1);
      expect(isOneLineError(r.stderr)).toBe(true);
      expect(r.stderr).toMatch(/^strata: error: no images? bad/);
      if (args.includes('worse:2')) expect(r.stderr).toContain('worse:2');
      expect(r.stderr).not.toContain('good');
      expect(r.stdout).toBe('');
      expect(refs(store)).toEqual(['good:1', 'other:latest']);
    }
    // On success, --json lists what went, by the name it had; a ref given twice goes once.
    const removed = await strataJson<LsEntry[]>(['rm', 'other', 'good:1', 'other:latest'], {
      store,
    });
    expect(removed.map((e) => e.ref)).toEqual(['other:latest', 'good:1']);
    expect(removed.every((e) => /^sha256:[0-9a-f]{64}$/.test(e.digest))).toBe(true);
    expect(refs(store)).toEqual([]);
  });
});

describe('fsck', () => {
  let store: string;
  beforeEach(async () => {
    store = tmpDir();
    await createTiny(store, 'f');
  });

  it('passes on a sound store', async () => {
    const r = await strata(['fsck'], { store });
    expect([r.code, r.stderr]).toEqual([0, '']);
  });

  it('exits 1 and names the blob when a blob is corrupt (same size)', async () => {
    const layer = manifestOf(store, 'f:latest').manifest.layers[0]!;
    const p = blobPath(store, layer.digest);
    const buf = fs.readFileSync(p);
    const i = buf.length >> 1;
    buf[i] = buf[i]! ^ 0xff;
    fs.writeFileSync(p, buf);
    const r = await strata(['fsck'], { store });
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      layer.digest.slice('sha256:'.length, 'sha256:'.length + 12),
    );
  });

  it('exits 1 and names the blob when a blob is missing', async () => {
    const cfg = manifestOf(store, 'f:latest').manifest.config;
    fs.unlinkSync(blobPath(store, cfg.digest));
    const r = await strata(['fsck'], { store });
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(
      cfg.digest.slice('sha256:'.length, 'sha256:'.length + 12),
    );
  });

  it('exits 1 when a blob is truncated', async () => {
    const layer = manifestOf(store, 'f:latest').manifest.layers[0]!;
    fs.truncateSync(blobPath(store, layer.digest), 10);
    expect((await strata(['fsck'], { store })).code).toBe(1);
  });
});

describe('a damaged manifest of one tag', () => {
  it('ls lists the others and marks it; df and gc refuse naming it; rm then gc mends the store', async () => {
    const store = tmpDir();
    await createTiny(store, 'ib:1', 'broken');
    await createTiny(store, 'ok:1', 'sound');
    const { digest } = manifestOf(store, 'ib:1');
    fs.writeFileSync(blobPath(store, digest), 'garbage\n');
    const ls = await strata(['ls'], { store });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^ib:1 +[a-f0-9]{12} +damaged$/m);
    expect(ls.stdout).toMatch(/^ok:1 +[a-f0-9]{12} +\d/m);
    expect(ls.stderr).toContain('strata: warning: ib:1: blob');
    expect(ls.stderr).toContain('strata rm ib:1');
    const json = await strataJson<Array<{ ref: string; size?: number; error?: string }>>(['ls'], {
      store,
    });
    expect(json.find((e) => e.ref === 'ib:1')?.error).toContain(digest);
    expect(json.find((e) => e.ref === 'ok:1')?.size).toBeGreaterThan(0);
    for (const cmd of [['df'], ['gc'], ['gc', '--all']]) {
      const r = await strata(cmd, { store });
      expect([cmd, r.code, isOneLineError(r.stderr)]).toEqual([cmd, 1, true]);
      expect(r.stderr).toContain(`cannot tell what ib:1 uses: blob ${digest}`);
      expect(r.stderr).toContain('`strata fsck`');
      expect(r.stderr).toContain('`strata rm ib:1`');
    }
    await strataOk(['rm', 'ib:1'], { store });
    await strataOk(['gc'], { store });
    expect((await strata(['fsck'], { store })).code).toBe(0);
  });

  it('a damaged index.json is named by its path', async () => {
    const store = tmpDir();
    await createTiny(store, 'x:1');
    fs.writeFileSync(path.join(store, 'index.json'), '{"schemaVersion": 2, "manif');
    const r = await strata(['ls'], { store });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`invalid ${path.join(store, 'index.json')}:`);
  });
});

describe('save and load', () => {
  let store: string;
  let saved: string;
  let digest: string;

  beforeAll(async () => {
    const fx = await minbaseRootfs();
    store = tmpDir('strata-e2e-store-');
    await strataOk(
      ['template', 'create', fx.rootfs, '-t', 'base', '--name', 'base', '--feature', 'ssh'],
      { store },
    );
    digest = manifestOf(store, 'base:latest').digest;
    saved = path.join(tmpDir(), 'base.tmpl.img');
    const r = await strataOk(['save', 'base', '-o', saved], { store });
    expect(r.stderr).toBe('');
  }, SLOW);

  it('writes one file that skopeo reads as an oci-archive', async () => {
    expect(fs.statSync(saved).isFile()).toBe(true);
    const info = JSON.parse(
      (await runOk('skopeo', ['inspect', `oci-archive:${saved}`])).stdout,
    ) as {
      Digest: string;
      Layers: string[];
    };
    expect(info.Digest).toBe(digest);
    expect(info.Layers).toEqual(
      manifestOf(store, 'base:latest').manifest.layers.map((l) => l.digest),
    );
  });

  it('load -t brings it back into another store with identical digests', async () => {
    const other = tmpDir('strata-e2e-store-');
    await strataOk(['load', saved, '-t', 'copy'], { store: other });
    const a = manifestOf(store, 'base:latest');
    const b = manifestOf(other, 'copy:latest');
    expect(b.digest).toBe(a.digest);
    expect(b.manifest.config.digest).toBe(a.manifest.config.digest);
    expect(b.manifest.layers.map((l) => l.digest)).toEqual(a.manifest.layers.map((l) => l.digest));
    const meta = await strataJson<{ digest: string; features: string[] }>(['inspect', 'copy'], {
      store: other,
    });
    expect(meta.digest).toBe(digest);
    expect(meta.features).toEqual(['ssh']);
    const fsck = await strata(['fsck'], { store: other });
    expect([fsck.code, fsck.stderr]).toEqual([0, '']);
  });

  it('load without -t keeps the saved tag; load - reads stdin', async () => {
    const other = tmpDir('strata-e2e-store-');
    await strataOk(['load', saved], { store: other });
    expect(refs(other)).toEqual(['base:latest']);
    expect(manifestOf(other, 'base:latest').digest).toBe(digest);
    await strataOk(['load', '-', '-t', 'piped'], { store: other, stdinFile: saved });
    expect(manifestOf(other, 'piped:latest').digest).toBe(digest);
  });

  it('refuses a corrupt archive with one line and tags nothing', async () => {
    const bad = path.join(tmpDir(), 'bad.tmpl.img');
    const buf = fs.readFileSync(saved);
    // Flip a byte well inside the largest member (the layer).
    const i = Math.floor(buf.length / 2);
    buf[i] = buf[i]! ^ 0xff;
    fs.writeFileSync(bad, buf);
    const other = tmpDir('strata-e2e-store-');
    const r = await strata(['load', bad, '-t', 'bad'], { store: other });
    expect(r.code).not.toBe(0);
    expect(isOneLineError(r.stderr)).toBe(true);
    const idx = path.join(other, 'index.json');
    if (fs.existsSync(idx)) expect(refs(other)).toEqual([]);
  });

  it.each(['SIGINT', 'SIGTERM'] as const)(
    'save interrupted by %s: exit 130, one error line, no temp file left',
    async (signal) => {
      const dir = tmpDir();
      const child = spawn(
        process.execPath,
        [CLI, '--store', store, 'save', 'base', '-o', path.join(dir, 'x.tmpl.img')],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<[number | null, string | null]>((resolve) =>
        child.on('close', (code, sig) => resolve([code, sig])),
      );
      let running = true;
      void exited.then(() => (running = false));
      const writing = () =>
        fs
          .readdirSync(dir)
          .some((n) => n.includes('.tmp') && fs.statSync(path.join(dir, n)).size > 0);
      while (running && !writing()) await new Promise((r) => setTimeout(r, 5));
      expect(running).toBe(true); // the save was caught in the act
      child.kill(signal);
      expect(await exited).toEqual([130, null]);
      expect(stderr).toBe('strata: error: save interrupted\n');
      expect(fs.readdirSync(dir)).toEqual([]);
    },
  );

  /** An OCI image layout as skopeo writes it: `skopeo copy oci-archive:FILE oci:DIR:name`. */
  async function skopeoLayout(...names: string[]): Promise<string> {
    const dir = path.join(tmpDir(), 'layout');
    for (const name of names)
      await runOk('skopeo', ['copy', `oci-archive:${saved}`, `oci:${dir}:${name}`]);
    return dir;
  }

  it('a layout skopeo wrote names its image x, and ls, inspect and rm take x as it is', async () => {
    const layout = await skopeoLayout('x');
    expect(refs(layout)).toEqual(['x']);
    const ls = await strataJson<LsEntry[]>(['ls'], { store: layout });
    expect(ls.map((e) => e.ref)).toEqual(['x']);
    const meta = await strataJson<{ digest: string }>(['inspect', 'x'], { store: layout });
    expect(meta.digest).toBe(digest);
    const rm = await strata(['rm', 'x'], { store: layout });
    expect(show(rm)).toMatch(/^exit 0/);
    expect(refs(layout)).toEqual([]);
  });

  it('load reads an OCI image layout directory, verifying every blob', async () => {
    const layout = await skopeoLayout('x', 'y:2');
    const other = tmpDir('strata-e2e-store-');
    const loaded = await strataJson<LsEntry[]>(['load', layout], { store: other });
    expect(loaded).toEqual([
      { ref: 'x:latest', digest },
      { ref: 'y:2', digest },
    ]);
    expect(refs(other)).toEqual(['x:latest', 'y:2']);
    const fsck = await strata(['fsck'], { store: other });
    expect([fsck.code, fsck.stderr]).toEqual([0, '']);

    // A layer changed in place (same size) is refused, and nothing is tagged.
    const layer = manifestOf(store, 'base:latest').manifest.layers[0]!.digest;
    const file = path.join(layout, 'blobs', 'sha256', layer.slice('sha256:'.length));
    const buf = fs.readFileSync(file);
    const i = Math.floor(buf.length / 2);
    buf[i] = buf[i]! ^ 0xff;
    fs.writeFileSync(file, buf);
    const third = tmpDir('strata-e2e-store-');
    const bad = await strata(['load', layout], { store: third });
    expect(bad.code).toBe(1);
    expect(isOneLineError(bad.stderr)).toBe(true);
    expect(bad.stderr).toContain(layer);
    expect(refs(third)).toEqual([]);

    // A directory that is no layout is refused by name, not with a raw EISDIR.
    const plain = tmpDir();
    const r = await strata(['load', plain], { store: third });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `strata: error: ${plain} is not an OCI archive or image layout: oci-layout or index.json is missing\n`,
    );
  });
});

describe('errors', () => {
  it('are one line without a stack; --debug adds the stack', async () => {
    const store = tmpDir();
    await createTiny(store, 'x');
    const r = await strata(['inspect', 'no-such:tag'], { store });
    expect(r.code).not.toBe(0);
    expect(isOneLineError(r.stderr)).toBe(true);
    expect(r.stderr).toContain('no-such:tag');
    const d = await strata(['inspect', 'no-such:tag', '--debug'], { store });
    expect(d.code).toBe(r.code);
    expect(d.stderr).toMatch(/\n\s+at /);
  });

  it('an unknown command or option is a usage error, not a crash', async () => {
    const store = tmpDir();
    const r = await strata(['template', 'create', '--no-such-option'], { store });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(show(r)).not.toMatch(/TypeError|ReferenceError/);
  });
});
