/** An OCI store read directly (not through strata), and disk usage. */
import * as fs from 'node:fs';
import * as path from 'node:path';

// ---------------------------------------------------------------------------------------------
// OCI store access, read directly (not through strata)

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export function blobPath(store: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return path.join(store, 'blobs', alg!, hex!);
}

export function readIndex(store: string): { manifests: Descriptor[] } {
  return JSON.parse(fs.readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Descriptor[];
  };
}

export function readBlobJson<T>(store: string, digest: string): T {
  return JSON.parse(fs.readFileSync(blobPath(store, digest), 'utf8')) as T;
}

export interface Manifest {
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The manifest tagged `ref` (a full `name:tag`) in a store's index.json. */
export function manifestOf(store: string, ref: string): { digest: string; manifest: Manifest } {
  const d = readIndex(store).manifests.find(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref,
  );
  if (!d) throw new Error(`no manifest tagged ${ref} in ${store}/index.json`);
  return { digest: d.digest, manifest: readBlobJson<Manifest>(store, d.digest) };
}

/** Total size of the files under `dir`. */
export function duBytes(dir: string): number {
  let total = 0;
  const walk = (d: string) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) walk(p);
      else total += fs.lstatSync(p).size;
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return total;
}

/** Every file and directory name under `dir` (relative), for "nothing written here" checks. */
export function listAll(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const ent of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? ent.name : `${rel}/${ent.name}`;
      out.push(r);
      if (ent.isDirectory()) walk(r);
    }
  };
  if (fs.existsSync(dir)) walk('');
  return out.sort();
}
