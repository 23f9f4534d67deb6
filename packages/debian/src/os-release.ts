/**
 * os-release(5): the distribution a rootfs says it is.
 */
import type { Distribution } from '@strata/oci';

/** Parse os-release (shell-style KEY=value, optionally quoted). */
export function parseOsRelease(text: string): Distribution {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let v = m[2] as string;
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) {
      v = v.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    }
    kv.set(m[1] as string, v);
  }
  const d: Distribution = {};
  const id = kv.get('ID');
  const versionId = kv.get('VERSION_ID');
  const codename = kv.get('VERSION_CODENAME');
  const pretty = kv.get('PRETTY_NAME');
  if (id) d.id = id;
  if (versionId) d.versionId = versionId;
  if (codename) d.versionCodename = codename;
  if (pretty) d.prettyName = pretty;
  return d;
}
