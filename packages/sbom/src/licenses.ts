import parseSpdx from 'spdx-expression-parse';
import spdxIds from 'spdx-license-ids';
import { parseDeb822 } from '@strata/debian';

/** A licence that is not on the SPDX list: its `LicenseRef-` id and what the file says of it. */
export interface ExtractedLicense {
  id: string;
  /** The name the copyright file gives it (or the package's, for a file that is not DEP-5). */
  name: string;
  /** The licence text the file carries, or its summary (see summarize). */
  text: string;
  /** Set when the file names the licence without its text: `text` only says so. */
  placeholder?: true;
}

/** What a package's copyright file says about its licences. */
export interface PackageLicense {
  /**
   * `dep5`: machine-readable (copyright-format 1.0), its short names turned into an SPDX
   * expression; `text`: any other file, named by a LicenseRef that carries the text's summary;
   * `none`: the package has no copyright file.
   */
  kind: 'dep5' | 'text' | 'none';
  /** The SPDX expression (SPDX ids and LicenseRefs); undefined for `none`. */
  expression?: string;
  /** The LicenseRefs the expression uses. */
  extracted: ExtractedLicense[];
}

const IDS = new Map(spdxIds.map((id) => [id.toLowerCase(), id]));

/**
 * Debian's short names (copyright-format 1.0, "License specification") whose SPDX id is not
 * the same name: the GNU family's `+` means "or any later version", and Expat is what SPDX
 * calls MIT. A name that is on the SPDX list as it is (any case) maps to itself.
 */
const DEBIAN_NAMES: Record<string, string> = {
  expat: 'MIT',
  'public-domain': 'LicenseRef-public-domain',
  'cc0-1.0': 'CC0-1.0',
  'psf-2': 'PSF-2.0',
};

/** The GNU licences, whose Debian names carry the version and an optional `+`. */
const GNU = /^(GPL|LGPL|AGPL|GFDL)-(\d)(?:\.(\d))?(\+)?$/i;

/**
 * A `LicenseRef-` id for a name: only letters, digits, '.' and '-' are allowed. A name that is
 * a LicenseRef already (DEP-5 lets a file name its licence so) keeps its one prefix.
 */
export function licenseRef(name: string): string {
  const idString = name
    .trim()
    .replace(/^LicenseRef-/i, '')
    .replace(/\+/g, 'plus')
    .replace(/[^A-Za-z0-9.-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `LicenseRef-${idString || 'unnamed'}`;
}

/**
 * One Debian short name as an SPDX id: from the table, from the GNU pattern, or the SPDX id
 * of that name; undefined when the SPDX list has none (the caller then makes a LicenseRef,
 * never a near match).
 */
export function spdxIdOf(shortName: string): string | undefined {
  const name = shortName.trim();
  const lower = name.toLowerCase();
  const mapped = DEBIAN_NAMES[lower];
  if (mapped !== undefined) return mapped;
  const gnu = GNU.exec(name);
  if (gnu) {
    const family = (gnu[1] as string).toUpperCase();
    const version = `${gnu[2]}.${gnu[3] ?? '0'}`;
    const id = `${family}-${version}-${gnu[4] ? 'or-later' : 'only'}`;
    return IDS.has(id.toLowerCase()) ? id : undefined;
  }
  return IDS.get(lower);
}

/** Whether `expr` parses as an SPDX licence expression. */
export function isSpdxExpression(expr: string): boolean {
  try {
    parseSpdx(expr);
    return true;
  } catch {
    return false;
  }
}

/**
 * The first lines of a copyright file that is not machine-readable, up to about 1,000
 * characters, cut at a line: what a reader needs to find the licence, kept short.
 */
export function summarize(text: string, max = 1000): string {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  let n = 0;
  for (const line of lines) {
    if (n + line.length > max && out.length > 0) {
      out.push('[…]');
      break;
    }
    out.push(line);
    n += line.length + 1;
  }
  return out.join('\n').trim();
}

const DEP5_FORMAT = /copyright-format\/1\.0|dep-?5/i;

/**
 * One DEP-5 `License:` first line as an SPDX expression. In Debian's syntax `and` binds
 * tighter than `or`, as in SPDX, and a comma separates groups of lower precedence, each
 * starting with `and` or `or`. A name with an exception (`GPL-2+ with OpenSSL exception`)
 * or without an SPDX id becomes a LicenseRef of its own.
 */
function dep5Expression(line: string, refs: Map<string, string>): string | undefined {
  const groups = line.split(',').map((g) => g.trim());
  const parts: string[] = [];
  for (const [i, group] of groups.entries()) {
    let g = group;
    let op = 'AND';
    if (i > 0) {
      const m = /^(and|or)\s+(.*)$/i.exec(g);
      if (m) {
        op = (m[1] as string).toUpperCase();
        g = m[2] as string;
      }
    }
    const tokens = g.split(/\s+(and|or)\s+(?!exception)/i);
    const out: string[] = [];
    for (let t = 0; t < tokens.length; t++) {
      const tok = (tokens[t] as string).trim();
      if (t % 2 === 1) {
        out.push(tok.toUpperCase());
        continue;
      }
      if (tok === '') return undefined;
      const id = /\swith\s/i.test(tok) ? undefined : spdxIdOf(tok);
      if (id !== undefined && !id.startsWith('LicenseRef-')) out.push(id);
      else {
        const ref = id ?? licenseRef(tok);
        refs.set(ref, tok);
        out.push(ref);
      }
    }
    const expr = out.length > 1 ? `(${out.join(' ')})` : (out[0] as string);
    if (i > 0) parts.push(op);
    parts.push(expr);
  }
  const joined = parts.join(' ');
  return groups.length > 1 ? joined : joined.replace(/^\((.*)\)$/, '$1');
}

/**
 * The licences of a package from its copyright file (`text`), or `none` without one. A
 * machine-readable file gives the AND of the distinct licences of its Files paragraphs (or the
 * header's, when no Files paragraph names one). A LicenseRef carries the text of the file's
 * standalone License paragraph of that name, or else the name itself. Any other file is one
 * LicenseRef named after the package, carrying the file's summary.
 */
export function packageLicense(pkg: string, text: string | undefined): PackageLicense {
  if (text === undefined) return { kind: 'none', extracted: [] };
  const paragraphs = parseDeb822(text);
  const header = paragraphs[0];
  if (header === undefined || !DEP5_FORMAT.test(header.get('format') ?? '')) {
    const id = licenseRef(`${pkg}-copyright`);
    return {
      kind: 'text',
      expression: id,
      extracted: [{ id, name: `${pkg} copyright file`, text: summarize(text) }],
    };
  }
  // A licence's text: a standalone License paragraph's, else one a Files paragraph carries
  // under a single name (DEP-5 allows both).
  const standalone = new Map<string, string>();
  for (const inFiles of [false, true]) {
    for (const p of paragraphs.slice(1)) {
      const lic = p.get('license');
      if (lic === undefined || p.has('files') !== inFiles) continue;
      const nl = lic.indexOf('\n');
      const first = lic.slice(0, Math.max(nl, 0)).trim();
      const key = first.toLowerCase();
      if (nl <= 0 || standalone.has(key) || (inFiles && /,|\s(and|or)\s/i.test(first))) continue;
      const body = lic.slice(nl + 1).trim();
      if (body !== '') standalone.set(key, body);
    }
  }
  const refs = new Map<string, string>();
  const exprs: string[] = [];
  const firstLines = paragraphs
    .filter((p) => p.has('files') && p.has('license'))
    .map((p) => (p.get('license') as string).split('\n')[0]?.trim() ?? '');
  if (firstLines.length === 0 && header.has('license'))
    firstLines.push((header.get('license') as string).split('\n')[0]?.trim() ?? '');
  for (const line of firstLines) {
    if (line === '') continue;
    const e = dep5Expression(line, refs);
    if (e !== undefined && !exprs.includes(e)) exprs.push(e);
  }
  if (exprs.length === 0) {
    const id = licenseRef(`${pkg}-copyright`);
    return {
      kind: 'text',
      expression: id,
      extracted: [{ id, name: `${pkg} copyright file`, text: summarize(text) }],
    };
  }
  const expression =
    exprs.length === 1
      ? (exprs[0] as string)
      : exprs.map((e) => (/\s/.test(e) && !/^\(.*\)$/.test(e) ? `(${e})` : e)).join(' AND ');
  const extracted = [...refs].map(([id, name]): ExtractedLicense => {
    const text = standalone.get(name.toLowerCase());
    return text !== undefined
      ? { id, name, text }
      : {
          id,
          name,
          text: `${name} (the licence as ${pkg}'s copyright file names it)`,
          placeholder: true,
        };
  });
  if (!isSpdxExpression(expression)) {
    // A line this parser read wrongly: the file stays a LicenseRef rather than a guess.
    const id = licenseRef(`${pkg}-copyright`);
    return {
      kind: 'text',
      expression: id,
      extracted: [{ id, name: `${pkg} copyright file`, text: summarize(text) }],
    };
  }
  return { kind: 'dep5', expression, extracted };
}

/** Texts compare without regard to how their lines are wrapped or indented. */
const sameText = (t: string) => t.replace(/\s+/g, ' ').trim();

/**
 * Make each LicenseRef id stand for one text across the packages of one document, rewriting
 * their expressions (in place). Ids that differ only by case are one id (the first package's
 * spelling). A placeholder gives way to a real text of the same name; when packages carry
 * different texts under one name, the first keeps the id and each other text gets an id of its
 * own, suffixed with the name of the first package that carries it.
 */
export function unifyLicenseRefs(pkgs: ReadonlyArray<{ name: string; license: PackageLicense }>) {
  const groups = new Map<string, { id: string; texts: Map<string, ExtractedLicense> }>();
  // An id made for another text must not be one that a file names itself.
  const taken = new Set(pkgs.flatMap((p) => p.license.extracted.map((e) => e.id.toLowerCase())));
  const fresh = (base: string): string => {
    let id = base;
    for (let n = 2; taken.has(id.toLowerCase()); n++) id = `${base}-${n}`;
    taken.add(id.toLowerCase());
    return id;
  };
  for (const p of pkgs) {
    for (const e of p.license.extracted) {
      const g = groups.get(e.id.toLowerCase()) ?? { id: e.id, texts: new Map() };
      groups.set(e.id.toLowerCase(), g);
      const key = sameText(e.text);
      if (e.placeholder === undefined && !g.texts.has(key)) {
        const id = g.texts.size === 0 ? g.id : fresh(licenseRef(`${g.id.slice(11)}-${p.name}`));
        g.texts.set(key, { id, name: e.name, text: e.text });
      }
    }
  }
  for (const p of pkgs) {
    const renamed = new Map<string, string>();
    const extracted: ExtractedLicense[] = [];
    for (const e of p.license.extracted) {
      const g = groups.get(e.id.toLowerCase()) as {
        id: string;
        texts: Map<string, ExtractedLicense>;
      };
      const real =
        e.placeholder === undefined
          ? g.texts.get(sameText(e.text))
          : ([...g.texts.values()][0] ?? undefined);
      const next: ExtractedLicense = real ?? { ...e, id: g.id };
      renamed.set(e.id, next.id);
      extracted.push(next);
    }
    if (p.license.expression !== undefined && renamed.size > 0) {
      p.license.expression = p.license.expression.replace(
        /LicenseRef-[A-Za-z0-9.-]+/g,
        (id) => renamed.get(id) ?? id,
      );
    }
    p.license.extracted = extracted;
  }
}
