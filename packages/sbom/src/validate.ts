import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import addFormats from 'ajv-formats';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import type { SbomFormat } from './formats';

/** The SPDX 2.3 schema, vendored from the spdx-spec repository (schemas/spdx/README.md). */
export const SPDX_SCHEMA = path.join(
  __dirname,
  '..',
  '..',
  '..',
  'schemas',
  'spdx',
  'spdx-schema.json',
);

let spdxValidator: Promise<(doc: unknown) => string[]> | undefined;

async function spdx(): Promise<(doc: unknown) => string[]> {
  const schema = JSON.parse(await fsp.readFile(SPDX_SCHEMA, 'utf8')) as object;
  const ajv = new Ajv2019({ allErrors: true, strict: false });
  addFormats(ajv);
  const check = ajv.compile(schema);
  return (doc) =>
    check(doc)
      ? []
      : (check.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

/**
 * Check an SBOM (its JSON text) against its official JSON schema: SPDX 2.3 (the vendored
 * schema, with Ajv's 2019-09 dialect, as the schema declares) or CycloneDX 1.6 (the schema the
 * CycloneDX library ships, with its strict validator). The problems found; none when valid.
 */
export async function validateSbom(format: SbomFormat, text: string): Promise<string[]> {
  if (format === 'spdx') {
    const check = await (spdxValidator ??= spdx());
    return check(JSON.parse(text));
  }
  const v = new Validation.JsonStrictValidator(Spec.Version.v1dot6);
  const errors = await v.validate(text);
  return errors === null ? [] : [JSON.stringify(errors)];
}
