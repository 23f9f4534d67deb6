/**
 * apt's auth.conf (apt_auth.conf(5)): the credentials of private apt repositories, so that the
 * engine can read their Release files as apt in the step will.
 */

/** One `machine … login … password …` entry. */
export interface AuthEntry {
  /** The protocol the entry names; undefined matches https only, as in apt. */
  protocol?: string;
  host: string;
  port?: string;
  /** Path prefix (no leading or trailing `/`); empty matches every path. */
  path: string;
  login: string;
  password: string;
}

/** The entries of an auth.conf, in order (`#` starts a comment, as apt allows). */
export function parseAuthConf(text: string): AuthEntry[] {
  const words = text
    .split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, ''))
    .join(' ')
    .split(/\s+/)
    .filter(Boolean);
  const out: AuthEntry[] = [];
  let cur: Partial<AuthEntry> & { machine?: string } = {};
  const flush = () => {
    if (cur.machine !== undefined && cur.login !== undefined && cur.password !== undefined) {
      const m = /^(?:([a-z+]+):\/\/)?([^/:]+)(?::(\d+))?(?:\/(.*))?$/i.exec(cur.machine);
      if (m)
        out.push({
          ...(m[1] !== undefined ? { protocol: m[1].toLowerCase() } : {}),
          host: (m[2] as string).toLowerCase(),
          ...(m[3] !== undefined ? { port: m[3] } : {}),
          path: (m[4] ?? '').replace(/\/+$/, ''),
          login: cur.login,
          password: cur.password,
        });
    }
    cur = {};
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    const v = words[i + 1];
    if (w === 'machine') {
      flush();
      cur.machine = v;
      i++;
    } else if (w === 'login' || w === 'password') {
      if (v !== undefined) cur[w] = v;
      i++;
    }
  }
  flush();
  return out;
}

/**
 * The `Authorization` header value for `url` from the first matching entry, as apt matches
 * them: host (and port, when the entry gives one), path prefix, and protocol (https when the
 * entry names none).
 */
export function authorizationFor(entries: readonly AuthEntry[], url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const protocol = u.protocol.replace(/:$/, '');
  const urlPath = decodeURIComponent(u.pathname).replace(/^\/+/, '');
  const e = entries.find(
    (x) =>
      (x.protocol ?? 'https') === protocol &&
      x.host === u.hostname.toLowerCase() &&
      (x.port === undefined || x.port === (u.port || (protocol === 'https' ? '443' : '80'))) &&
      (x.path === '' || urlPath === x.path || urlPath.startsWith(`${x.path}/`)),
  );
  return e && `Basic ${Buffer.from(`${e.login}:${e.password}`).toString('base64')}`;
}
