/**
 * Stable JSON encoding used for every document Strata writes: object keys keep their
 * insertion order (our builders insert them in a fixed order), no whitespace. Same input,
 * same bytes, same digest.
 */
export function encodeJson(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc), 'utf8');
}
