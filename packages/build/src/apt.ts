import { promises as fsp } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Digest, InvalidArgumentError, StrataError, sha256 } from '@strata/oci';

/** One apt source: a `deb` line or a deb822 stanza, expanded per suite. */
export interface AptSource {
  uri: string;
  suite: string;
  components: string[];
  options: Record<string, string>;
}

/** The apt sources a build step sees, in both apt formats' common denominator. */
export interface AptSources {
  /** Where they came from, for messages. */
  origin: string;
  /** The text handed to apt, as a one-line sources.list. */
  text: string;
  entries: AptSource[];
  /** sha256 of `text`: part of every apt step's cache key. */
  digest: Digest;
}

function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const m = /^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) throw new InvalidArgumentError(`apt sources: cannot parse line ${JSON.stringify(raw)}`);
    if (m[1] !== 'deb') continue;
    const options: Record<string, string> = {};
    for (const o of (m[2] ?? '').split(/\s+/).filter(Boolean)) {
      const [k, v] = o.split('=');
      if (k) options[k] = v ?? '';
    }
    out.push({
      uri: (m[3] as string).replace(/\/+$/, ''),
      suite: m[4] as string,
      components: (m[5] ?? '').split(/\s+/).filter(Boolean),
      options,
    });
  }
  return out;
}

function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const para of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of para.split('\n')) {
      if (line.startsWith('#')) continue;
      if (/^\s/.test(line) && last) {
        fields.set(last, `${fields.get(last)} ${line.trim()}`);
        continue;
      }
      const c = line.indexOf(':');
      if (c <= 0) continue;
      last = line.slice(0, c).trim().toLowerCase();
      fields.set(last, line.slice(c + 1).trim());
    }
    if (fields.size === 0) continue;
    if (fields.get('enabled')?.toLowerCase() === 'no') continue;
    const types = (fields.get('types') ?? '').split(/\s+/);
    if (!types.includes('deb')) continue;
    const options: Record<string, string> = {};
    for (const key of ['signed-by', 'trusted', 'arch']) {
      const v = fields.get(key);
      if (v !== undefined && !(key === 'signed-by' && v.includes('\n'))) options[key] = v;
    }
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter(Boolean)) {
      for (const suite of (fields.get('suites') ?? '').split(/\s+/).filter(Boolean)) {
        out.push({
          uri: uri.replace(/\/+$/, ''),
          suite,
          components: (fields.get('components') ?? '').split(/\s+/).filter(Boolean),
          options,
        });
      }
    }
  }
  return out;
}

/** Parse apt sources in one-line (`deb …`) or deb822 (`Types: deb`) format. */
export function parseSources(text: string): AptSource[] {
  return /^\s*types\s*:/im.test(text) ? parseDeb822Sources(text) : parseOneLine(text);
}

export function formatSources(entries: AptSource[]): string {
  return (
    entries
      .map((e) => {
        const opts = Object.entries(e.options)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ');
        return `deb ${opts ? `[${opts}] ` : ''}${e.uri} ${e.suite} ${e.components.join(' ')}`.trim();
      })
      .join('\n') + '\n'
  );
}

export function makeSources(text: string, origin: string): AptSources {
  const entries = parseSources(text);
  if (entries.length === 0) throw new InvalidArgumentError(`${origin}: no deb sources`);
  const canonical = formatSources(entries);
  return { origin, text: canonical, entries, digest: sha256(canonical) };
}

/** The build host's own sources: /etc/apt/sources.list and sources.list.d/*.{list,sources}. */
export async function hostSources(etc = '/etc/apt'): Promise<AptSources> {
  const parts: string[] = [];
  try {
    parts.push(await fsp.readFile(path.join(etc, 'sources.list'), 'utf8'));
  } catch {
    /* none */
  }
  try {
    for (const f of (await fsp.readdir(path.join(etc, 'sources.list.d'))).sort()) {
      if (!/\.(list|sources)$/.test(f)) continue;
      const text = await fsp.readFile(path.join(etc, 'sources.list.d', f), 'utf8');
      parts.push(formatSources(parseSources(text)));
    }
  } catch {
    /* none */
  }
  return makeSources(parts.map((p) => formatSources(parseSources(p))).join(''), 'the build host');
}

function fetchUrl(url: string, timeoutMs = 15000, redirects = 5): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith('https:') ? https : http;
    const req = mod.get(url, { timeout: timeoutMs }, (res) => {
      const code = res.statusCode ?? 0;
      if (code >= 300 && code < 400 && res.headers.location && redirects > 0) {
        res.resume();
        resolve(fetchUrl(new URL(res.headers.location, url).toString(), timeoutMs, redirects - 1));
        return;
      }
      if (code === 404 || code === 403 || code === 410) {
        res.resume();
        resolve(undefined);
        return;
      }
      if (code !== 200) {
        res.resume();
        reject(new StrataError('UNAVAILABLE', `GET ${url}: HTTP ${code}`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new StrataError('UNAVAILABLE', `GET ${url}: timed out`)));
    req.on('error', (e) =>
      reject(
        e instanceof StrataError ? e : new StrataError('UNAVAILABLE', `GET ${url}: ${e.message}`),
      ),
    );
  });
}

async function readIndexFile(uri: string, rel: string): Promise<Buffer | undefined> {
  if (uri.startsWith('file:')) {
    const p = path.join(decodeURIComponent(uri.replace(/^file:(\/\/)?/, '/')), rel);
    try {
      return await fsp.readFile(p);
    } catch {
      return undefined;
    }
  }
  if (!/^https?:/.test(uri))
    throw new InvalidArgumentError(`apt source ${uri}: only http, https and file URIs`);
  return fetchUrl(`${uri}/${rel}`);
}

/** What the apt sources resolve to right now. */
export interface IndexState {
  /** A digest over each suite's InRelease (or Release, or for flat repositories Packages) file. */
  digest: Digest;
  /**
   * The newest `Date:` of those Release files, in seconds since the epoch: the date of the mirror
   * state. Undefined when no file has one (a flat repository's Packages file has none).
   */
  date?: number;
}

/** The `Date:` field of a Release or InRelease file, in seconds since the epoch. */
export function releaseDate(text: string): number | undefined {
  const m = /^Date:[ \t]*(.+?)[ \t]*$/m.exec(text);
  if (!m) return undefined;
  const ms = Date.parse(m[1] as string);
  return Number.isNaN(ms) ? undefined : Math.floor(ms / 1000);
}

/**
 * The state of the apt indices the sources resolve to. Cheap: a few small requests, no apt run.
 * A changed mirror gives a different digest.
 */
export async function indexState(sources: AptSources): Promise<IndexState> {
  const parts = await Promise.all(
    sources.entries.map(async (e) => {
      const base = e.suite.endsWith('/') ? e.suite : `dists/${e.suite}/`;
      for (const name of ['InRelease', 'Release', 'Packages']) {
        const data = await readIndexFile(e.uri, `${base}${name}`);
        if (data !== undefined) {
          return {
            line: `${e.uri} ${e.suite} ${name} ${createHash('sha256').update(data).digest('hex')}`,
            date: name === 'Packages' ? undefined : releaseDate(data.toString('utf8')),
          };
        }
      }
      throw new StrataError(
        'UNAVAILABLE',
        `apt source ${e.uri} ${e.suite}: no InRelease, Release or Packages file`,
      );
    }),
  );
  const dates = parts.map((p) => p.date).filter((d): d is number => d !== undefined);
  return {
    digest: sha256(parts.map((p) => p.line).join('\n')),
    ...(dates.length > 0 ? { date: Math.max(...dates) } : {}),
  };
}

/**
 * Where a store keeps apt's state between builds: `lists/<sources>` and `cache/<sources>` (the
 * indices and apt's parsed source cache, per sources), `archives` (downloaded .debs, shared) and
 * `check/<sources>` (the indices `strata check` downloads). None of it reaches a layer; `strata
 * gc --apt-cache` drops it.
 */
export function aptStateDir(storeRoot: string): string {
  return path.join(storeRoot, '.strata', 'apt');
}

/** apt.conf handed to steps through APT_CONFIG: everything host-provided lives under /run/strata. */
export function aptConf(): string {
  return [
    'Dir::Etc::SourceList "/run/strata/sources.list";',
    'Dir::Etc::SourceParts "/run/strata/sources.list.d";',
    'Dir::State::Lists "/run/strata/lists";',
    'Dir::Cache::Archives "/run/strata/archives";',
    // The status cache depends on the rootfs, so it is never kept. The source cache depends on
    // the lists only, and apt checks it against them: kept per sources beside the lists, it
    // spares each apt run of a step parsing the indices again (about 1 s for bookworm main).
    'Dir::Cache::pkgcache "";',
    'Dir::Cache::srcpkgcache "/run/strata/cache/srcpkgcache.bin";',
    'APT::Sandbox::User "root";',
    'APT::Install-Recommends "false";',
    'Acquire::Languages "none";',
    // No fsync per unpacked file: the step's tree is scratch until its layer blob is committed.
    'Dpkg::Options { "--force-confdef"; "--force-confold"; "--force-unsafe-io"; };',
    'Dpkg::Use-Pty "false";',
    '',
  ].join('\n');
}
