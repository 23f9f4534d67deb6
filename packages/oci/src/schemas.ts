/**
 * JSON Schemas for every JSON document Strata writes. `npm run schemas` writes them to
 * /schemas; a test checks that the files there match these objects.
 */
const digest = { type: 'string', pattern: '^sha256:[a-f0-9]{64}$' } as const;
const stringMap = { type: 'object', additionalProperties: { type: 'string' } } as const;
const base = 'https://strata.invalid/schemas/';

const platform = {
  type: 'object',
  required: ['architecture', 'os'],
  properties: {
    architecture: { type: 'string' },
    os: { type: 'string' },
    'os.version': { type: 'string' },
    'os.features': { type: 'array', items: { type: 'string' } },
    variant: { type: 'string' },
  },
} as const;

const descriptor = {
  type: 'object',
  required: ['mediaType', 'digest', 'size'],
  properties: {
    mediaType: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$',
    },
    digest,
    size: { type: 'integer', minimum: 0 },
    urls: { type: 'array', items: { type: 'string' } },
    annotations: stringMap,
    platform,
    artifactType: { type: 'string' },
  },
} as const;

export const ociLayoutSchema = {
  $id: `${base}oci-layout.schema.json`,
  title: 'OCI image layout marker',
  type: 'object',
  required: ['imageLayoutVersion'],
  properties: { imageLayoutVersion: { const: '1.0.0' } },
} as const;

export const imageIndexSchema = {
  $id: `${base}image-index.schema.json`,
  title: 'OCI image index',
  type: 'object',
  required: ['schemaVersion', 'manifests'],
  properties: {
    schemaVersion: { const: 2 },
    mediaType: { const: 'application/vnd.oci.image.index.v1+json' },
    manifests: { type: 'array', items: descriptor },
    annotations: stringMap,
  },
} as const;

export const imageManifestSchema = {
  $id: `${base}image-manifest.schema.json`,
  title: 'OCI image manifest',
  type: 'object',
  required: ['schemaVersion', 'config', 'layers'],
  properties: {
    schemaVersion: { const: 2 },
    mediaType: { const: 'application/vnd.oci.image.manifest.v1+json' },
    config: descriptor,
    layers: { type: 'array', items: descriptor },
    annotations: stringMap,
    subject: descriptor,
    artifactType: { type: 'string' },
  },
} as const;

export const templateMetadataSchema = {
  $id: `${base}template-metadata.schema.json`,
  title: 'Strata template metadata',
  description: 'Stored under the "strata" key of the OCI image config of every template.',
  type: 'object',
  additionalProperties: false,
  required: [
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
  properties: {
    schemaVersion: { const: 1 },
    name: { type: 'string', minLength: 1 },
    created: { type: 'string', format: 'date-time' },
    features: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true },
    architecture: { type: 'string' },
    distribution: {
      type: 'object',
      additionalProperties: false,
      properties: {
        id: { type: 'string' },
        versionId: { type: 'string' },
        versionCodename: { type: 'string' },
        prettyName: { type: 'string' },
      },
    },
    packages: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'version', 'architecture', 'source'],
        properties: {
          name: { type: 'string', minLength: 1 },
          version: { type: 'string', minLength: 1 },
          architecture: { type: 'string' },
          source: { type: 'string', minLength: 1 },
          sourceVersion: { type: 'string' },
        },
      },
    },
    exclusions: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['pattern', 'reason', 'action', 'matched'],
        properties: {
          pattern: { type: 'string', minLength: 1 },
          reason: { type: 'string' },
          action: { enum: ['drop', 'empty'] },
          matched: { type: 'integer', minimum: 0 },
        },
      },
    },
    layers: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['diffId', 'createdBy'],
        properties: {
          diffId: digest,
          createdBy: { type: 'string' },
          packagesAdded: { type: 'array', items: { type: 'string' } },
          packagesRemoved: { type: 'array', items: { type: 'string' } },
          cacheKey: digest,
        },
      },
    },
    baseChain: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'ref', 'digest'],
        properties: { name: { type: 'string' }, ref: { type: 'string' }, digest },
      },
    },
    labels: stringMap,
  },
} as const;

export const imageConfigSchema = {
  $id: `${base}image-config.schema.json`,
  title: 'OCI image configuration with Strata template metadata',
  type: 'object',
  required: ['architecture', 'os', 'rootfs'],
  properties: {
    created: { type: 'string', format: 'date-time' },
    author: { type: 'string' },
    architecture: { type: 'string' },
    os: { type: 'string' },
    variant: { type: 'string' },
    config: {
      type: 'object',
      properties: {
        Env: { type: 'array', items: { type: 'string' } },
        Labels: stringMap,
        WorkingDir: { type: 'string' },
        Cmd: { type: 'array', items: { type: 'string' } },
        Entrypoint: { type: 'array', items: { type: 'string' } },
      },
    },
    rootfs: {
      type: 'object',
      required: ['type', 'diff_ids'],
      properties: { type: { const: 'layers' }, diff_ids: { type: 'array', items: digest } },
    },
    history: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          created: { type: 'string', format: 'date-time' },
          created_by: { type: 'string' },
          author: { type: 'string' },
          comment: { type: 'string' },
          empty_layer: { type: 'boolean' },
        },
      },
    },
    strata: { $ref: templateMetadataSchema.$id },
  },
} as const;

/** `<store>/.strata/config.json`: optional; every field has a default. */
export const storeConfigSchema = {
  $id: `${base}store-config.schema.json`,
  title: 'Strata store configuration',
  description:
    'Optional file <store>/.strata/config.json. gc.keepUnusedBytes and gc.keepUnusedDays bound ' +
    'the build-cache entries and snapshots that no tagged image uses but gc keeps for later builds.',
  type: 'object',
  additionalProperties: false,
  properties: {
    gc: {
      type: 'object',
      additionalProperties: false,
      properties: {
        keepUnusedBytes: { type: 'integer', minimum: 0 },
        keepUnusedDays: { type: 'number', minimum: 0 },
      },
    },
  },
} as const;

const figure = {
  type: 'object',
  additionalProperties: false,
  required: ['count', 'bytes'],
  properties: { count: { type: 'integer', minimum: 0 }, bytes: { type: 'integer', minimum: 0 } },
} as const;

const usageKind = { enum: ['blobs', 'build-cache', 'snapshots', 'apt-cache'] } as const;

/** `strata gc --json`. */
export const gcReportSchema = {
  $id: `${base}gc-report.schema.json`,
  title: 'strata gc --json',
  description:
    'What gc freed (or, with dryRun, would free) and what it kept, and why. bytesFreed is the ' +
    'sum of the freed figures; removed counts the blobs deleted, build-cache layers included.',
  type: 'object',
  additionalProperties: false,
  required: ['dryRun', 'removed', 'bytesFreed', 'freed', 'kept'],
  properties: {
    dryRun: { type: 'boolean' },
    removed: { type: 'integer', minimum: 0 },
    bytesFreed: { type: 'integer', minimum: 0 },
    freed: {
      type: 'object',
      additionalProperties: false,
      required: ['blobs', 'buildCache', 'snapshots', 'aptCache', 'partials'],
      properties: {
        blobs: figure,
        buildCache: figure,
        snapshots: figure,
        aptCache: figure,
        partials: figure,
      },
    },
    kept: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'reason', 'count', 'bytes', 'why', 'freedBy'],
        properties: {
          kind: usageKind,
          reason: { enum: ['live', 'limit', 'busy', 'opt-in'] },
          count: { type: 'integer', minimum: 0 },
          bytes: { type: 'integer', minimum: 0 },
          why: { type: 'string' },
          freedBy: { type: 'string' },
        },
      },
    },
  },
} as const;

/** `strata df --json`. */
export const dfReportSchema = {
  $id: `${base}df-report.schema.json`,
  title: 'strata df --json',
  description:
    'Disk use of a store by kind. reclaimable is what the gc command in freedBy frees; live ' +
    'counts what tagged images use.',
  type: 'object',
  additionalProperties: false,
  required: ['store', 'rows', 'totalBytes'],
  properties: {
    store: { type: 'string' },
    totalBytes: { type: 'integer', minimum: 0 },
    rows: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'count', 'live', 'bytes', 'reclaimable', 'freedBy'],
        properties: {
          kind: { enum: ['tags', 'blobs', 'build-cache', 'snapshots', 'apt-cache'] },
          count: { type: 'integer', minimum: 0 },
          live: { type: 'integer', minimum: 0 },
          bytes: { type: 'integer', minimum: 0 },
          reclaimable: { type: 'integer', minimum: 0 },
          freedBy: { type: 'string' },
        },
      },
    },
  },
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
} as const;
