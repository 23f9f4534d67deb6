import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ArtifactTypes,
  Descriptor,
  ImageIndex,
  MediaTypes,
  digestHex,
  encodeJson,
  parseReference,
  sha256,
} from '@strata/oci';
import { Store } from '@strata/store';
import { pull, push } from './copy';
import { fallbackTag } from './fallback-tag';

/**
 * A scripted registry on 127.0.0.1 that keeps blobs and manifests in memory. With `api` it has
 * the referrers API and tracks subjects (OCI-Subject); without, it answers 404 there, as
 * docker-registry 2.8 does.
 */
async function memoryRegistry(api: boolean) {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { type: string; body: Buffer }>();
  const seen: string[] = [];
  let uploads = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = new URL(req.url ?? '', 'http://h');
      seen.push(`${req.method} ${url.pathname}`);
      const p = url.pathname;
      let m: RegExpExecArray | null;
      if (p === '/v2/') res.writeHead(200).end('{}');
      else if ((m = /^\/v2\/x\/blobs\/(sha256:[a-f0-9]{64})$/.exec(p))) {
        const b = blobs.get(m[1] as string);
        if (!b) res.writeHead(404).end();
        else
          res
            .writeHead(200, { 'content-length': b.length })
            .end(req.method === 'HEAD' ? undefined : b);
      } else if (p === '/v2/x/blobs/uploads/' && req.method === 'POST')
        res.writeHead(202, { location: `/v2/x/blobs/uploads/u${++uploads}` }).end();
      else if (p.startsWith('/v2/x/blobs/uploads/') && req.method === 'PUT') {
        const d = url.searchParams.get('digest') ?? '';
        if (sha256(body) !== d) res.writeHead(400).end();
        else {
          blobs.set(d, body);
          res.writeHead(201).end();
        }
      } else if ((m = /^\/v2\/x\/manifests\/(.+)$/.exec(p))) {
        const ref = m[1] as string;
        if (req.method === 'PUT') {
          const type = req.headers['content-type'] ?? '';
          manifests.set(ref, { type, body });
          manifests.set(sha256(body), { type, body });
          const subject = (JSON.parse(body.toString()) as { subject?: unknown }).subject;
          const headers: Record<string, string> = { 'docker-content-digest': sha256(body) };
          if (api && subject) headers['oci-subject'] = (subject as Descriptor).digest;
          res.writeHead(201, headers).end();
        } else {
          const got = manifests.get(ref);
          if (!got) res.writeHead(404).end();
          else
            res
              .writeHead(200, {
                'content-type': got.type,
                'docker-content-digest': sha256(got.body),
              })
              .end(req.method === 'HEAD' ? undefined : got.body);
        }
      } else if ((m = /^\/v2\/x\/referrers\/(sha256:[a-f0-9]{64})$/.exec(p)) && api) {
        const list: Descriptor[] = [];
        for (const [ref, { body: b }] of manifests) {
          if (ref !== sha256(b)) continue;
          const doc = JSON.parse(b.toString()) as {
            subject?: Descriptor;
            artifactType?: string;
            annotations?: Record<string, string>;
          };
          if (doc.subject?.digest !== m[1]) continue;
          list.push({
            mediaType: MediaTypes.imageManifest,
            digest: sha256(b),
            size: b.length,
            ...(doc.artifactType ? { artifactType: doc.artifactType } : {}),
            ...(doc.annotations ? { annotations: doc.annotations } : {}),
          });
        }
        // Pages of one entry each, the next one named by a Link header.
        list.sort((a, b) => (a.digest < b.digest ? -1 : 1));
        const page = Number(url.searchParams.get('page') ?? '0');
        const headers: Record<string, string> = { 'content-type': MediaTypes.imageIndex };
        if (page + 1 < list.length) headers.link = `<${p}?page=${page + 1}>; rel="next"`;
        res.writeHead(200, headers).end(
          encodeJson({
            schemaVersion: 2,
            mediaType: MediaTypes.imageIndex,
            manifests: list.slice(page, page + 1),
          }),
        );
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    seen,
    manifests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let dir: string;
let store: Store;
const closers: Array<() => Promise<void>> = [];
beforeEach(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'strata-referrers-'));
  store = await Store.open(path.join(dir, 'store'));
});
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A tagged image with an artifact of two files attached. */
async function imageWithDebs(): Promise<{ img: Descriptor; art: Descriptor }> {
  const layer = await store.putBytes(Buffer.from('layer'));
  const config = await store.putJson(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } },
    MediaTypes.imageConfig,
  );
  const img = await store.putJson(
    {
      schemaVersion: 2,
      mediaType: MediaTypes.imageManifest,
      config,
      layers: [{ mediaType: MediaTypes.layerTar, ...layer }],
    },
    MediaTypes.imageManifest,
  );
  await store.tag('img:1', img);
  const files = [];
  for (const title of ['a_1_all.deb', 'b_1_all.deb']) {
    const p = path.join(dir, title);
    await fsp.writeFile(p, `deb ${title}`);
    files.push({ path: p, mediaType: MediaTypes.debianPackage, title });
  }
  return { img, art: await store.attach(img, ArtifactTypes.debs, files) };
}

test('without the referrers API, push writes the fallback tag, keeping what others put there; pull reads it and skips an entry whose manifest is gone', async () => {
  const srv = await memoryRegistry(false);
  closers.push(srv.close);
  const { img, art } = await imageWithDebs();
  // Someone else's artifact of the same subject is there, and listed already.
  const theirsBody = encodeJson({
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    artifactType: 'application/x-signature',
    config: { mediaType: MediaTypes.empty, digest: sha256('{}'), size: 2 },
    layers: [],
    subject: { mediaType: img.mediaType, digest: img.digest, size: img.size },
  });
  const theirs: Descriptor = {
    mediaType: MediaTypes.imageManifest,
    digest: sha256(theirsBody),
    size: theirsBody.length,
    artifactType: 'application/x-signature',
  };
  srv.manifests.set(theirs.digest, { type: MediaTypes.imageManifest, body: theirsBody });
  // And one whose manifest was deleted since: the pull leaves it out.
  const gone: Descriptor = {
    mediaType: MediaTypes.imageManifest,
    digest: sha256('deleted'),
    size: 7,
    artifactType: 'application/x-signature',
  };
  const tag = fallbackTag(img.digest);
  expect(tag).toBe(`sha256-${digestHex(img.digest)}`);
  srv.manifests.set(tag, {
    type: MediaTypes.imageIndex,
    body: encodeJson({
      schemaVersion: 2,
      mediaType: MediaTypes.imageIndex,
      manifests: [theirs, gone],
    }),
  });

  const r = await push(store, 'img:1', parseReference(`${srv.host}/x:1`));
  expect(r.manifests).toBe(2);
  expect(r.blobs).toBe(5); // layer, config, the empty config, two debs
  const puts = srv.seen.filter((s) => s.startsWith('PUT /v2/x/manifests/'));
  // The subject first, then the artifact, then the fallback index.
  expect(puts).toEqual([
    'PUT /v2/x/manifests/1',
    `PUT /v2/x/manifests/${art.digest}`,
    `PUT /v2/x/manifests/${tag}`,
  ]);
  const index = JSON.parse(srv.manifests.get(tag)!.body.toString()) as ImageIndex;
  expect(index.mediaType).toBe(MediaTypes.imageIndex);
  expect(index.manifests).toEqual([theirs, gone, art]);

  // A second push finds its entry there and leaves the index alone.
  srv.seen.length = 0;
  await push(store, 'img:1', parseReference(`${srv.host}/x:1`));
  expect(srv.seen.filter((s) => s === `PUT /v2/x/manifests/${tag}`)).toEqual([]);

  // A pull into a fresh store reads the fallback tag and brings the artifact and its blobs.
  const other = await Store.open(path.join(dir, 'other'));
  srv.seen.length = 0;
  const p = await pull(other, parseReference(`${srv.host}/x:1`), { tag: 'got:1' });
  expect(srv.seen).toContain(`GET /v2/x/referrers/${img.digest}`);
  expect(srv.seen).toContain(`GET /v2/x/manifests/${tag}`);
  expect(p.manifests).toBe(3);
  expect(await other.referrers(img.digest, ArtifactTypes.debs)).toEqual([art]);
  // Referrers of every type travel: the store is a copy of what the registry has.
  expect((await other.referrers(img.digest)).map((d) => d.digest).sort()).toEqual(
    [art.digest, theirs.digest].sort(),
  );
  expect((await other.fsck()).problems).toEqual([]);
});

test('with the referrers API, push writes no fallback tag and pull lists through the API, page by page', async () => {
  const srv = await memoryRegistry(true);
  closers.push(srv.close);
  const { img, art } = await imageWithDebs();
  const note = path.join(dir, 'note.txt');
  await fsp.writeFile(note, 'a note');
  const other = await store.attach(img, 'application/x-note', [
    { path: note, mediaType: 'text/plain', title: 'note.txt' },
  ]);
  await push(store, 'img:1', parseReference(`${srv.host}/x:1`));
  expect(srv.manifests.has(fallbackTag(img.digest))).toBe(false);
  const fresh = await Store.open(path.join(dir, 'other'));
  srv.seen.length = 0;
  await pull(fresh, parseReference(`${srv.host}/x:1`), { tag: 'got:1' });
  // Two pages of the referrers API, and no fallback tag.
  expect(srv.seen.filter((x) => x === `GET /v2/x/referrers/${img.digest}`)).toHaveLength(2);
  expect(srv.seen).not.toContain(`GET /v2/x/manifests/${fallbackTag(img.digest)}`);
  expect(await fresh.referrers(img.digest, ArtifactTypes.debs)).toEqual([art]);
  expect(await fresh.referrers(img.digest, 'application/x-note')).toEqual([other]);
});
