/** A parsed `WWW-Authenticate` challenge (RFC 7235), e.g. `Bearer realm="…",service="…",scope="…"`. */
export interface Challenge {
  scheme: 'basic' | 'bearer' | string;
  params: Record<string, string>;
}

/**
 * Parse a `WWW-Authenticate` header. Handles several challenges in one header and quoted
 * values with escapes and commas. Parameter names are lower-cased; values kept as sent.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const text = Array.isArray(header) ? header.join(', ') : header;
  const out: Challenge[] = [];
  let i = 0;
  let current: Challenge | undefined;
  const skipWs = (): void => {
    while (i < text.length && /[\s,]/.test(text[i] ?? '')) i++;
  };
  while (i < text.length) {
    skipWs();
    const m = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)/.exec(text.slice(i));
    if (!m || !m[1]) break;
    const token = m[1];
    i += token.length;
    while (i < text.length && text[i] === ' ') i++;
    if (text[i] === '=') {
      // a parameter of the current challenge
      i++;
      while (i < text.length && text[i] === ' ') i++;
      let value = '';
      if (text[i] === '"') {
        i++;
        while (i < text.length && text[i] !== '"') {
          if (text[i] === '\\' && i + 1 < text.length) i++;
          value += text[i];
          i++;
        }
        i++;
      } else {
        const v = /^[^,\s]*/.exec(text.slice(i));
        value = v?.[0] ?? '';
        i += value.length;
      }
      if (current) current.params[token.toLowerCase()] = value;
    } else {
      // No prototype: a parameter named __proto__ is a parameter like any other.
      current = {
        scheme: token.toLowerCase(),
        params: Object.create(null) as Record<string, string>,
      };
      out.push(current);
    }
  }
  return out;
}

/** The scope string for a repository, e.g. `repository:team/base:pull,push`. */
export function repositoryScope(repository: string, actions: readonly string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}
