import { InvalidDocumentError } from './errors';
import type {
  ImageConfig,
  ImageIndex,
  ImageManifest,
  StoreConfigFile,
  TemplateMetadata,
} from './types';
// Standalone validators compiled from schemas.ts by scripts/write-schemas.js (`npm run schemas`):
// no ajv compiler is loaded or run at start-up. A test checks they match schemas.ts.
import * as generated from './validators.generated';

export type Validation<T> = { ok: true; value: T } | { ok: false; errors: string[] };

interface AjvError {
  instancePath?: string;
  message?: string;
}
type GeneratedValidator = ((doc: unknown) => boolean) & { errors?: AjvError[] | null };

function wrap<T>(fn: GeneratedValidator): (doc: unknown) => Validation<T> {
  return (doc) => {
    if (fn(doc)) return { ok: true, value: doc as T };
    const errors = (fn.errors ?? []).map(
      (e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`,
    );
    return { ok: false, errors };
  };
}

const v = generated as unknown as Record<string, GeneratedValidator>;
export const validateIndex = wrap<ImageIndex>(v.imageIndex as GeneratedValidator);
export const validateManifest = wrap<ImageManifest>(v.imageManifest as GeneratedValidator);
export const validateConfig = wrap<ImageConfig>(v.imageConfig as GeneratedValidator);
export const validateTemplateMetadata = wrap<TemplateMetadata>(
  v.templateMetadata as GeneratedValidator,
);
export const validateStoreConfig = wrap<StoreConfigFile>(v.storeConfig as GeneratedValidator);
/** For tests and tools that read `strata gc --json` / `strata df --json`. */
export const validateGcReport = wrap<unknown>(v.gcReport as GeneratedValidator);
export const validateDfReport = wrap<unknown>(v.dfReport as GeneratedValidator);
/** For tests and tools that read `strata diff --json`. */
export const validateDiffReport = wrap<unknown>(v.diffReport as GeneratedValidator);
/** For tests and tools that read `sources.json` of `strata sources`. */
export const validateSourceIndex = wrap<unknown>(v.sourceIndex as GeneratedValidator);
export const validateOciLayout = wrap<{ imageLayoutVersion: '1.0.0' }>(
  v.ociLayout as GeneratedValidator,
);

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

/**
 * Parse JSON from a buffer, throwing InvalidDocumentError on syntax errors. The error gives the
 * position only: JSON.parse quotes the text around it, which may be anything (a file a link
 * pointed to).
 */
export function parseJson(data: Buffer | string, what: string): unknown {
  const text = data.toString();
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const at = /at position (\d+)/.exec(msg)?.[1];
    const why = /Unexpected end of JSON input/.test(msg)
      ? `not valid JSON: it ends early, at position ${text.length}`
      : at !== undefined
        ? `not valid JSON at position ${at}`
        : 'not valid JSON';
    throw new InvalidDocumentError(what, [why]);
  }
}
