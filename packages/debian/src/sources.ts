/**
 * apt sources, in one-line (`deb …`) or deb822 format, read into one canonical form.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Digest, InvalidArgumentError, sha256 } from '@strata/oci';

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
