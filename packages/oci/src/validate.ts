import Ajv, { ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { InvalidDocumentError } from './errors';
import {
  imageConfigSchema,
  imageIndexSchema,
  imageManifestSchema,
  ociLayoutSchema,
  templateMetadataSchema,
} from './schemas';
import type { ImageConfig, ImageIndex, ImageManifest, TemplateMetadata } from './types';

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: string[] };

let shared: Ajv | undefined;
function ajv(): Ajv {
  if (!shared) {
    shared = new Ajv({ allErrors: true, strict: true });
    addFormats(shared);
    shared.addSchema(templateMetadataSchema);
  }
  return shared;
}

/** A validator compiled on first use, so that loading the module costs nothing. */
function compile<T>(schema: object): (doc: unknown) => Validation<T> {
  let fn: ValidateFunction | undefined;
  return (doc) => {
    fn ??= ajv().compile(schema);
    if (fn(doc)) return { ok: true, value: doc as T };
    const errors = (fn.errors ?? []).map(
      (e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`,
    );
    return { ok: false, errors };
  };
}

export const validateIndex = compile<ImageIndex>(imageIndexSchema);
export const validateManifest = compile<ImageManifest>(imageManifestSchema);
export const validateConfig = compile<ImageConfig>(imageConfigSchema);
export const validateTemplateMetadata = compile<TemplateMetadata>({
  $ref: templateMetadataSchema.$id,
});
export const validateOciLayout = compile<{ imageLayoutVersion: '1.0.0' }>(ociLayoutSchema);

/** Validate, or throw an {@link InvalidDocumentError} naming the document. */
export function assertValid<T>(
  check: (doc: unknown) => Validation<T>,
  doc: unknown,
  what: string,
): T {
  const r = check(doc);
  if (!r.ok) throw new InvalidDocumentError(what, r.errors);
  return r.value;
}

/** Parse JSON from a buffer, throwing InvalidDocumentError on syntax errors. */
export function parseJson(data: Buffer | string, what: string): unknown {
  try {
    return JSON.parse(data.toString());
  } catch (e) {
    throw new InvalidDocumentError(what, [(e as Error).message]);
  }
}
