/**
 * Fuzzing of what reads manifests, indexes and configs from outside (a registry, an archive, a
 * store someone else wrote): imageOf / indexOf (parse and validate), then what every command
 * does next with the result: selectManifest, platformsOf, image.layers(), walkGraph and
 * describeReferrer. Each may return, or throw a StrataError.
 */
import fc from 'fast-check';
import { Readable } from 'node:stream';
import { encodeJson } from './canonical';
import { Digest, sha256 } from './digest';
import { NotFoundError } from './errors';
import { ContentSource, imageOf, indexOf } from './image';
import { Annotations, MediaTypes } from './media-types';
import { configPlatform, platformsOf } from './platform';
import { describeReferrer } from './referrer';
import { requireManifest, selectManifest } from './select';
import {
  FUZZ_TIMEOUT_MS,
  fuzzParams,
  jsonish,
  mutatedText,
  parsesOrThrowsTypedAsync,
} from './testing';
import type { Descriptor } from './types';
import { walkGraph } from './walk';

/** Blobs by digest, as a backend that verified them would hand them out. */
class Blobs implements ContentSource {
  private readonly blobs = new Map<string, Buffer>();
  put(mediaType: string, data: Buffer): Descriptor {
    const digest = sha256(data);
    this.blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  }
  async readBlob(d: Descriptor): Promise<Buffer> {
    const b = this.blobs.get(d.digest);
    if (b === undefined) throw new NotFoundError(`no blob ${d.digest}`);
    return b;
  }
  async openBlob(d: Descriptor): Promise<Readable> {
    return Readable.from([await this.readBlob(d)]);
  }
  async openDecompressed(d: Descriptor): Promise<Readable> {
    return this.openBlob(d);
  }
}

const D = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;

const validConfig = {
  created: '2024-01-01T00:00:00Z',
  architecture: 'arm64',
  os: 'linux',
  variant: 'v8',
  config: { Env: ['PATH=/usr/bin'], Labels: { a: 'b' } },
  rootfs: { type: 'layers', diff_ids: [D('1'), D('2')] },
  history: [{ created_by: 'BOOTSTRAP', empty_layer: false }],
};
const layer = (c: string) => ({ mediaType: MediaTypes.layerZstd, digest: D(c), size: 10 });
const validManifest = (config: Descriptor) => ({
  schemaVersion: 2,
  mediaType: MediaTypes.imageManifest,
  config,
  layers: [layer('a'), layer('b')],
  annotations: { [Annotations.created]: '2024-01-01T00:00:00Z' },
  subject: { mediaType: MediaTypes.imageManifest, digest: D('c'), size: 3 },
});
const validIndex = {
  schemaVersion: 2,
  mediaType: MediaTypes.imageIndex,
  manifests: [
    {
      mediaType: MediaTypes.imageManifest,
      digest: D('d'),
      size: 500,
      platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
      annotations: { [Annotations.role]: 'rootfs' },
    },
    {
      mediaType: MediaTypes.imageManifest,
      digest: D('e'),
      size: 400,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { [Annotations.role]: 'buildchroot' },
    },
    { mediaType: MediaTypes.imageIndex, digest: D('f'), size: 300 },
  ],
};

const KEYS = [
  'schemaVersion',
  'mediaType',
  'manifests',
  'config',
  'layers',
  'annotations',
  'subject',
  'artifactType',
  'digest',
  'size',
  'platform',
  'architecture',
  'os',
  'variant',
  'urls',
  'rootfs',
  'diff_ids',
  'type',
  'history',
  'strata',
  Annotations.role,
];
const LEAVES = [
  2,
  MediaTypes.imageManifest,
  MediaTypes.imageIndex,
  MediaTypes.imageConfig,
  MediaTypes.layerZstd,
  D('a'),
  'layers',
  'rootfs',
  'buildchroot',
  'linux',
  'arm64',
];

/** Splices a random JSON value into a copy of `doc` at a random path. */
function spliced(doc: unknown): fc.Arbitrary<unknown> {
  return fc
    .tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), jsonish(KEYS, LEAVES), fc.boolean())
    .map(([path, value, remove]) => {
      const copy = JSON.parse(JSON.stringify(doc)) as unknown;
      let node = copy as Record<string, unknown>;
      for (let i = 0; i < path.length; i++) {
        const keys = Object.keys(node);
        if (keys.length === 0) break;
        const k = keys[(path[i] as number) % keys.length] as string;
        const child = node[k];
        if (i === path.length - 1 || child === null || typeof child !== 'object') {
          if (remove) delete node[k];
          else node[k] = value;
          break;
        }
        node = child as Record<string, unknown>;
      }
      return copy;
    });
}

/** Bytes of documents: valid ones with a part replaced, mutated JSON text, random JSON. */
function documentBytes(valid: unknown): fc.Arbitrary<Buffer> {
  const text = JSON.stringify(valid, null, 1);
  return fc.oneof(
    { arbitrary: spliced(valid).map((d) => Buffer.from(JSON.stringify(d))), weight: 4 },
    {
      arbitrary: mutatedText(fc.constant(text), [
        '{',
        '}',
        '[',
        ']',
        '"',
        ',',
        ':',
        'null',
        '1e999',
        '-0',
        '"\\u0000"',
      ]).map((s) => Buffer.from(s)),
      weight: 3,
    },
    {
      arbitrary: jsonish(KEYS, LEAVES).map((d) => Buffer.from(JSON.stringify(d) ?? 'null')),
      weight: 2,
    },
    { arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), weight: 1 },
  );
}

const platforms = fc.constantFrom(
  undefined,
  { architecture: 'arm64', os: 'linux' },
  { architecture: 'arm64', os: 'linux', variant: 'v8' },
  { architecture: 'amd64', os: 'linux' },
);
const roles = fc.constantFrom(undefined, 'rootfs' as const, 'buildchroot' as const);

/**
 * Tallies how many cases were read and how many refused: a fuzz test whose inputs never get past
 * the first check (or never fail it) tests less than it seems, so both must occur.
 */
class Outcomes {
  ok = 0;
  refused = 0;
  add(r: { ok: boolean }): void {
    if (r.ok) this.ok++;
    else this.refused++;
  }
  expectBoth(): void {
    expect(this.ok).toBeGreaterThan(0);
    expect(this.refused).toBeGreaterThan(0);
  }
}

async function readImage(src: Blobs, d: Descriptor): Promise<void> {
  const image = imageOf(src, d);
  await image.manifest();
  configPlatform(await image.config());
  for (const l of await image.layers()) await l.diffId();
}

describe('manifests, indexes and configs under fuzzing', () => {
  test(
    'an image manifest is read, or refused with a typed error',
    async () => {
      const seen = new Outcomes();
      await fc.assert(
        fc.asyncProperty(documentBytes(validManifest(layer('0'))), async (bytes) => {
          const src = new Blobs();
          const config = src.put(MediaTypes.imageConfig, encodeJson(validConfig));
          // The manifest's config descriptor names the config blob that is there, when it can.
          const text = bytes.toString().split(D('0')).join(config.digest);
          const d = src.put(MediaTypes.imageManifest, Buffer.from(text));
          seen.add(await parsesOrThrowsTypedAsync(() => readImage(src, d)));
          await parsesOrThrowsTypedAsync(() => walkGraph(d, (x) => src.readBlob(x)));
          await parsesOrThrowsTypedAsync(async () => describeReferrer(d, Buffer.from(text)));
        }),
        fuzzParams('image manifest'),
      );
      seen.expectBoth();
    },
    FUZZ_TIMEOUT_MS,
  );

  test(
    'an image config is read, or refused with a typed error',
    async () => {
      const seen = new Outcomes();
      await fc.assert(
        fc.asyncProperty(documentBytes(validConfig), async (bytes) => {
          const src = new Blobs();
          const config = src.put(MediaTypes.imageConfig, bytes);
          const d = src.put(MediaTypes.imageManifest, encodeJson(validManifest(config)));
          seen.add(await parsesOrThrowsTypedAsync(() => readImage(src, d)));
        }),
        fuzzParams('image config'),
      );
      seen.expectBoth();
    },
    FUZZ_TIMEOUT_MS,
  );

  test(
    'an image index is read and a manifest picked, or refused with a typed error',
    async () => {
      const seen = new Outcomes();
      await fc.assert(
        fc.asyncProperty(
          documentBytes(validIndex),
          platforms,
          roles,
          async (bytes, platform, role) => {
            const src = new Blobs();
            const d = src.put(MediaTypes.imageIndex, bytes);
            const r = await parsesOrThrowsTypedAsync(async () => {
              const index = await indexOf(src, d).indexManifest();
              const sel = { ...(role ? { role } : {}), ...(platform ? { platform } : {}) };
              const s = selectManifest(index, sel);
              if (s.ok) expect(index.manifests).toContain(s.descriptor);
              platformsOf(index);
              requireManifest(index, sel, 'fuzzed index');
            });
            seen.add(r);
            await parsesOrThrowsTypedAsync(() =>
              walkGraph(d, (x) => src.readBlob(x), { referrers: async () => [] }),
            );
          },
        ),
        fuzzParams('image index'),
      );
      seen.expectBoth();
    },
    FUZZ_TIMEOUT_MS,
  );
});
