/** Test helpers of @strata/layer: small tars written entry by entry. Not part of the build. */
import { encodeTarHeader, TAR_END, tarPadding, TarHeader } from './index';

/** One entry: a path ending in `/` is a directory, one with `link` a symlink, else a file. */
export interface TarSpec {
  path: string;
  type?: TarHeader['type'];
  body?: string;
  link?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  dev?: [number, number];
  xattrs?: Record<string, string>;
  /** Seconds since the epoch; default 1700000000. */
  mtime?: number;
}

/** A whole tar of `entries`, in order, dated 2023-11-14 unless an entry says otherwise. */
export function tarOf(entries: TarSpec[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type =
      e.type ?? (e.path.endsWith('/') ? 'dir' : e.link !== undefined ? 'symlink' : 'file');
    const body = Buffer.from(e.body ?? '');
    parts.push(
      encodeTarHeader({
        path: e.path,
        type,
        mode: e.mode ?? (type === 'dir' ? 0o755 : 0o644),
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        size: type === 'file' ? body.length : 0,
        mtime: e.mtime ?? 1700000000,
        linkpath: e.link ?? '',
        devmajor: e.dev?.[0] ?? 0,
        devminor: e.dev?.[1] ?? 0,
        xattrs: Object.fromEntries(
          Object.entries(e.xattrs ?? {}).map(([k, v]) => [k, Buffer.from(v)]),
        ),
      }),
    );
    if (type === 'file') parts.push(body, Buffer.alloc(tarPadding(body.length)));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}
