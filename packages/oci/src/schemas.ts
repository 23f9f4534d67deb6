/**
 * JSON Schemas for every JSON document Strata writes. `npm run schemas` writes them to
 * /schemas; a test checks that the files there match these objects.
 */
const digest = { type: 'string', pattern: '^sha256:[a-f0-9]{64}$' } as const;
const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;
const text = { type: 'string' } as const;
const name = { type: 'string', minLength: 1 } as const;
const count = { type: 'integer', minimum: 0 } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;
const base = 'https://strata.invalid/schemas/';

// The documents are mostly objects of known keys. These builders keep the key order of the
// hand-written schemas, so the published files and the generated validators do not change.
const arrayOf = <T>(items: T) => ({ type: 'array', items }) as const;
const object = <R extends readonly string[], P>(required: R, properties: P) =>
  ({ type: 'object', required, properties }) as const;
/** An object that rejects unknown keys: what Strata writes is checked exactly. */
const closed = <R extends readonly string[], P>(required: R, properties: P) =>
  ({ type: 'object', additionalProperties: false, required, properties }) as const;
/** The head of a published schema: where it lives and what it describes. */
const head = (file: string, title: string, description?: string) =>
  ({
    $id: `${base}${file}`,
    title,
    ...(description === undefined ? {} : { description }),
  }) as const;

const platform = object(['architecture', 'os'], {
  architecture: text,
  os: text,
  'os.version': text,
  'os.features': arrayOf(text),
  variant: text,
});

const descriptor = object(['mediaType', 'digest', 'size'], {
  mediaType: {
    type: 'string',
    pattern: '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$',
  },
  digest,
  size: count,
  urls: arrayOf(text),
  annotations: stringMap,
  platform,
  artifactType: text,
});

export const ociLayoutSchema = {
  ...head('oci-layout.schema.json', 'OCI image layout marker'),
  ...object(['imageLayoutVersion'], { imageLayoutVersion: { const: '1.0.0' } }),
} as const;

export const imageIndexSchema = {
  ...head('image-index.schema.json', 'OCI image index'),
  ...object(['schemaVersion', 'manifests'], {
    schemaVersion: { const: 2 },
    mediaType: { const: 'application/vnd.oci.image.index.v1+json' },
    manifests: arrayOf(descriptor),
    annotations: stringMap,
  }),
} as const;

export const imageManifestSchema = {
  ...head('image-manifest.schema.json', 'OCI image manifest'),
  ...object(['schemaVersion', 'config', 'layers'], {
    schemaVersion: { const: 2 },
    mediaType: { const: 'application/vnd.oci.image.manifest.v1+json' },
    config: descriptor,
    layers: arrayOf(descriptor),
    annotations: stringMap,
    subject: descriptor,
    artifactType: text,
  }),
} as const;

/** A binary that embeds a source package, and the field of its control data that says so. */
const builtUsingEntry = closed(['binary', 'field'], {
  binary: name,
  field: { enum: ['Built-Using', 'Static-Built-Using'] },
});

const debianPackage = closed(['name', 'version', 'architecture', 'source'], {
  name,
  version: name,
  architecture: text,
  source: name,
  sourceVersion: text,
  state: text,
  builtUsing: arrayOf(name),
  staticBuiltUsing: arrayOf(name),
});

const exclusion = closed(['pattern', 'reason', 'action', 'matched'], {
  pattern: name,
  reason: text,
  action: { enum: ['drop', 'empty'] },
  matched: count,
});

const baseTemplate = closed(['name', 'ref', 'digest'], { name: text, ref: text, digest });

export const templateMetadataSchema = {
  ...head(
    'template-metadata.schema.json',
    'Strata template metadata',
    'Stored under the "strata" key of the OCI image config of every template.',
  ),
  ...closed(
    [
      'schemaVersion',
      'name',
      'created',
      'features',
      'architecture',
      'distribution',
      'packages',
      'exclusions',
      'layers',
    ],
    {
      schemaVersion: { const: 1 },
      name,
      created: dateTime,
      features: { ...arrayOf(name), uniqueItems: true },
      architecture: text,
      distribution: {
        type: 'object',
        additionalProperties: false,
        properties: { id: text, versionId: text, versionCodename: text, prettyName: text },
      },
      packages: arrayOf(debianPackage),
      exclusions: arrayOf(exclusion),
      layers: arrayOf(
        closed(['diffId', 'createdBy'], {
          diffId: digest,
          createdBy: text,
          packagesAdded: arrayOf(text),
          packagesRemoved: arrayOf(text),
          cacheKey: digest,
          localRepo: text,
          localDebs: arrayOf(text),
          ownDebs: arrayOf(text),
          copiedFrom: closed(['stage', 'chain'], { stage: text, chain: digest }),
        }),
      ),
      emptySteps: arrayOf(
        closed(['after', 'createdBy', 'cacheKey'], {
          after: count,
          createdBy: text,
          cacheKey: digest,
          localRepo: text,
          copiedFrom: closed(['stage', 'chain'], { stage: text, chain: digest }),
        }),
      ),
      baseChain: arrayOf(baseTemplate),
      labels: stringMap,
      debuilds: arrayOf(
        closed(['source', 'cacheKey', 'buildchroot', 'inputs', 'packages'], {
          source: text,
          cacheKey: digest,
          buildchroot: digest,
          inputs: arrayOf(digest),
          packages: arrayOf(text),
        }),
      ),
      aptSources: arrayOf(text),
      shadowedPackages: arrayOf(
        closed(['name', 'version', 'architecture', 'source', 'layer'], {
          ...debianPackage.properties,
          layer: digest,
        }),
      ),
    },
  ),
} as const;

export const imageConfigSchema = {
  ...head('image-config.schema.json', 'OCI image configuration with Strata template metadata'),
  ...object(['architecture', 'os', 'rootfs'], {
    created: dateTime,
    author: text,
    architecture: text,
    os: text,
    variant: text,
    config: {
      type: 'object',
      properties: {
        Env: arrayOf(text),
        Labels: stringMap,
        WorkingDir: text,
        Cmd: arrayOf(text),
        Entrypoint: arrayOf(text),
      },
    },
    rootfs: object(['type', 'diff_ids'], { type: { const: 'layers' }, diff_ids: arrayOf(digest) }),
    history: arrayOf({
      type: 'object',
      properties: {
        created: dateTime,
        created_by: text,
        author: text,
        comment: text,
        empty_layer: { type: 'boolean' },
      },
    }),
    strata: { $ref: templateMetadataSchema.$id },
  }),
} as const;

/** `<store>/.strata/config.json`: optional; every field has a default. */
export const storeConfigSchema = {
  ...head(
    'store-config.schema.json',
    'Strata store configuration',
    'Optional file <store>/.strata/config.json. gc.keepUnusedBytes and gc.keepUnusedDays bound ' +
      'the build-cache entries and snapshots that no tagged image uses but gc keeps for later builds.',
  ),
  type: 'object',
  additionalProperties: false,
  properties: {
    gc: {
      type: 'object',
      additionalProperties: false,
      properties: { keepUnusedBytes: count, keepUnusedDays: { type: 'number', minimum: 0 } },
    },
  },
} as const;

const figure = closed(['count', 'bytes'], { count, bytes: count });

const usageKind = { enum: ['blobs', 'build-cache', 'snapshots', 'apt-cache'] } as const;

/** `strata gc --json`. */
export const gcReportSchema = {
  ...head(
    'gc-report.schema.json',
    'strata gc --json',
    'What gc freed (or, with dryRun, would free) and what it kept, and why. bytesFreed is the ' +
      'sum of the freed figures; removed counts the blobs deleted, build-cache layers included.',
  ),
  ...closed(['dryRun', 'removed', 'bytesFreed', 'freed', 'kept'], {
    dryRun: { type: 'boolean' },
    removed: count,
    bytesFreed: count,
    freed: closed(['blobs', 'buildCache', 'snapshots', 'aptCache', 'partials'], {
      blobs: figure,
      buildCache: figure,
      snapshots: figure,
      aptCache: figure,
      partials: figure,
    }),
    kept: arrayOf(
      closed(['kind', 'reason', 'count', 'bytes', 'why', 'freedBy'], {
        kind: usageKind,
        reason: { enum: ['live', 'limit', 'busy', 'opt-in'] },
        count,
        bytes: count,
        why: text,
        freedBy: text,
      }),
    ),
  }),
} as const;

/** `strata df --json`. */
export const dfReportSchema = {
  ...head(
    'df-report.schema.json',
    'strata df --json',
    'Disk use of a store by kind. reclaimable is what the gc command in freedBy frees; live ' +
      'counts what tagged images use.',
  ),
  ...closed(['store', 'rows', 'totalBytes'], {
    store: text,
    totalBytes: count,
    rows: arrayOf(
      closed(['kind', 'count', 'live', 'bytes', 'reclaimable', 'freedBy'], {
        kind: { enum: ['tags', 'blobs', 'build-cache', 'snapshots', 'apt-cache', 'ingest'] },
        count,
        live: count,
        bytes: count,
        reclaimable: count,
        freedBy: text,
      }),
    ),
  }),
} as const;

const entryType = { enum: ['file', 'link', 'symlink', 'char', 'block', 'dir', 'fifo'] } as const;
const fileInfo = closed(['path', 'type', 'size', 'mode', 'uid', 'gid'], {
  path: text,
  type: entryType,
  size: count,
  mode: count,
  uid: count,
  gid: count,
  link: text,
  digest,
  device: text,
});
const sizeChange = closed(['path', 'old', 'new', 'delta'], {
  path: text,
  old: count,
  new: count,
  delta: { type: 'integer' },
});
const changed = <T>(of: T) => closed(['old', 'new'], { old: of, new: of });
const side = closed(['ref', 'digest', 'platform'], {
  ref: text,
  digest,
  platform: text,
  name: text,
});

/** `strata diff --json`. */
export const diffReportSchema = {
  ...head(
    'diff-report.schema.json',
    'strata diff --json',
    'What changed from image a to image b. Files come from the flattened layers (a hardlink ' +
      "reads as the file it links to; digest is the sha256 of a file's data, when it was " +
      'hashed: files only in the layers both images share are not); sizes are bytes ' +
      'of file data, a hardlink counted once, for the directories down to depth components ' +
      'whose size changed. identical is true when nothing below differs.',
  ),
  ...closed(['a', 'b', 'identical', 'packages', 'files', 'sizes', 'metadata'], {
    a: side,
    b: side,
    identical: { type: 'boolean' },
    packages: closed(['added', 'removed', 'changed'], {
      added: arrayOf(debianPackage),
      removed: arrayOf(debianPackage),
      changed: arrayOf(
        closed(['name', 'architecture', 'old', 'new', 'direction'], {
          name,
          architecture: text,
          old: name,
          new: name,
          direction: { enum: ['upgrade', 'downgrade'] },
        }),
      ),
    }),
    files: closed(['added', 'removed', 'changed'], {
      added: arrayOf(fileInfo),
      removed: arrayOf(fileInfo),
      changed: arrayOf(
        closed(['path', 'changes', 'old', 'new'], {
          path: text,
          changes: arrayOf({ enum: ['type', 'content', 'mode', 'owner', 'link', 'device'] }),
          old: fileInfo,
          new: fileInfo,
        }),
      ),
    }),
    sizes: closed(['depth', 'total', 'dirs'], {
      depth: count,
      total: sizeChange,
      dirs: arrayOf(sizeChange),
    }),
    metadata: closed(['features', 'exclusions', 'labels', 'env'], {
      name: changed({ type: ['string', 'null'] }),
      created: changed({ type: ['string', 'null'] }),
      platform: changed(text),
      features: closed(['added', 'removed'], { added: arrayOf(text), removed: arrayOf(text) }),
      exclusions: closed(['added', 'removed', 'changed'], {
        added: arrayOf(exclusion),
        removed: arrayOf(exclusion),
        changed: arrayOf(changed(exclusion)),
      }),
      baseChain: changed(arrayOf(baseTemplate)),
      labels: closed(['added', 'removed', 'changed'], {
        added: stringMap,
        removed: stringMap,
        changed: { type: 'object', additionalProperties: changed(text) },
      }),
      env: closed(['added', 'removed', 'changed'], {
        added: stringMap,
        removed: stringMap,
        changed: { type: 'object', additionalProperties: changed(text) },
      }),
    }),
  }),
} as const;

const sourceFile = closed(['name', 'sha256', 'size'], {
  name,
  sha256: { type: 'string', pattern: '^[a-f0-9]{64}$' },
  size: count,
});

/** `sources.json` of `strata sources` (and the index layer of an attached sources bundle). */
export const sourceIndexSchema = {
  ...head(
    'source-index.schema.json',
    'strata sources: sources.json',
    'Which binary package of a template came from which Debian source package, with the files ' +
      'written for each (checked against the Sources index and the .dsc); the source packages ' +
      'the mirror lacks; the layers of its COPY steps; its DEBUILD sources; the Sources ' +
      'indices read. Binaries are name:arch=version. A DEBUILD source package is carried with ' +
      "the template's .debs and written like a mirror's, checked against its .dsc.",
  ),
  ...closed(
    [
      'schemaVersion',
      'digest',
      'name',
      'architecture',
      'sources',
      'missing',
      'copied',
      'debuilds',
      'indices',
    ],
    {
      schemaVersion: { const: 2 },
      digest,
      name: text,
      architecture: name,
      sources: arrayOf(
        closed(['name', 'version', 'binaries', 'repository', 'files'], {
          name,
          version: name,
          binaries: arrayOf(name),
          shadowed: arrayOf(name),
          builtUsing: arrayOf(builtUsingEntry),
          repository: name,
          files: arrayOf(sourceFile),
        }),
      ),
      missing: arrayOf(
        closed(['name', 'version', 'binaries', 'reason'], {
          name,
          version: name,
          binaries: arrayOf(name),
          shadowed: arrayOf(name),
          builtUsing: arrayOf(builtUsingEntry),
          reason: name,
        }),
      ),
      copied: arrayOf(
        closed(['createdBy', 'layer', 'file'], {
          createdBy: text,
          layer: digest,
          file: name,
          fromStage: name,
        }),
      ),
      debuilds: arrayOf(
        closed(['name', 'version', 'packages', 'files'], {
          name,
          version: name,
          source: name,
          packages: arrayOf(name),
          files: arrayOf(sourceFile),
        }),
      ),
      indices: closed(['read', 'none'], { read: arrayOf(name), none: arrayOf(name) }),
    },
  ),
} as const;

/** Every schema, keyed by the file name it is published under in /schemas. */
export const allSchemas = {
  'oci-layout.schema.json': ociLayoutSchema,
  'image-index.schema.json': imageIndexSchema,
  'image-manifest.schema.json': imageManifestSchema,
  'image-config.schema.json': imageConfigSchema,
  'template-metadata.schema.json': templateMetadataSchema,
  'store-config.schema.json': storeConfigSchema,
  'gc-report.schema.json': gcReportSchema,
  'df-report.schema.json': dfReportSchema,
  'diff-report.schema.json': diffReportSchema,
  'source-index.schema.json': sourceIndexSchema,
} as const;
