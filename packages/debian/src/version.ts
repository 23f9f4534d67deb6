/**
 * Debian version ordering, as dpkg's `verrevcmp` defines it.
 */
/** Order of one character in dpkg's non-digit comparison: `~` sorts first, then the end, then letters. */
function charOrder(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** dpkg's `verrevcmp` for an upstream version or a revision. */
function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    let first = 0;
    while (
      (i < a.length && !/[0-9]/.test(a[i] as string)) ||
      (j < b.length && !/[0-9]/.test(b[j] as string))
    ) {
      const ac = i < a.length && !/[0-9]/.test(a[i] as string) ? charOrder(a[i]) : 0;
      const bc = j < b.length && !/[0-9]/.test(b[j] as string) ? charOrder(b[j]) : 0;
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    while (a[i] === '0') i++;
    while (b[j] === '0') j++;
    while (
      i < a.length &&
      /[0-9]/.test(a[i] as string) &&
      j < b.length &&
      /[0-9]/.test(b[j] as string)
    ) {
      if (!first) first = (a.charCodeAt(i) as number) - (b.charCodeAt(j) as number);
      i++;
      j++;
    }
    if (i < a.length && /[0-9]/.test(a[i] as string)) return 1;
    if (j < b.length && /[0-9]/.test(b[j] as string)) return -1;
    if (first) return first;
  }
  return 0;
}

function splitVersion(v: string): { epoch: number; upstream: string; revision: string } {
  const s = v.trim();
  const colon = s.indexOf(':');
  const epoch = colon > 0 ? Number.parseInt(s.slice(0, colon), 10) || 0 : 0;
  const rest = colon > 0 ? s.slice(colon + 1) : s;
  const dash = rest.lastIndexOf('-');
  return dash > 0
    ? { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) }
    : { epoch, upstream: rest, revision: '' };
}

/** Compare two Debian versions as dpkg does: negative, zero or positive. */
export function compareDebianVersions(a: string, b: string): number {
  const va = splitVersion(a);
  const vb = splitVersion(b);
  if (va.epoch !== vb.epoch) return va.epoch > vb.epoch ? 1 : -1;
  const u = compareFragment(va.upstream, vb.upstream);
  if (u !== 0) return u > 0 ? 1 : -1;
  const r = compareFragment(va.revision, vb.revision);
  return r > 0 ? 1 : r < 0 ? -1 : 0;
}
