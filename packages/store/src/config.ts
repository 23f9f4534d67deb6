import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { StoreConfigFile, assertValid, parseJson, validateStoreConfig } from '@strata/oci';

/** The store's settings: `.strata/config.json` with defaults filled in. */
export interface StoreConfig {
  gc: {
    /**
     * Bytes of build-cache layers and snapshots that no tagged image uses which `gc` keeps
     * (most recently used first). 0: an explicit gc frees everything no tag uses.
     */
    keepUnusedBytes: number;
    /** Unused entries not used for this many days go, whatever the byte budget. */
    keepUnusedDays: number;
  };
}

export const defaultStoreConfig: StoreConfig = { gc: { keepUnusedBytes: 0, keepUnusedDays: 7 } };

/**
 * Apparent bytes of the files under `p` (a file or a tree); a file hard-linked twice counts
 * once per `seen` set. Missing paths count 0.
 */
export async function diskUsage(p: string, seen = new Set<string>()): Promise<number> {
  let st;
  try {
    st = await fsp.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  let bytes = 0;
  const id = `${st.dev}:${st.ino}`;
  if (!seen.has(id)) {
    seen.add(id);
    if (!st.isDirectory()) bytes += st.size;
  }
  if (st.isDirectory()) {
    const names = await fsp.readdir(p).catch(() => [] as string[]);
    for (const n of names) bytes += await diskUsage(path.join(p, n), seen);
  }
  return bytes;
}

/** The settings in `file` (`.strata/config.json`), with defaults filled in. */
export async function readStoreConfig(file: string): Promise<StoreConfig> {
  let data: Buffer;
  try {
    data = await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(defaultStoreConfig);
    throw e;
  }
  const doc: StoreConfigFile = assertValid(validateStoreConfig, parseJson(data, file), file);
  return { gc: { ...defaultStoreConfig.gc, ...(doc.gc ?? {}) } };
}
