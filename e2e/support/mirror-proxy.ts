/**
 * Debian's mirror (as the tests reach it: e2e/fixtures/build/harness.ts's DEBIAN_SOURCES) behind
 * a proxy on 127.0.0.1, for tests that watch or gate what apt, mmdebstrap or strata ask of it.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export const MIRROR = 'http://deb.debian.org';

export interface MirrorProxy {
  /** `http://127.0.0.1:PORT`, standing for the mirror's `http://deb.debian.org`. */
  url: string;
  close(): Promise<void>;
}

/**
 * Passes every request on to the mirror, unless `gate` answers it itself (and returns true);
 * `answered` hears the mirror's status for each request passed on.
 */
export async function startMirrorProxy(
  o: {
    gate?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
    answered?: (path: string, status: number) => void;
  } = {},
): Promise<MirrorProxy> {
  const server = http.createServer((req, res) => {
    if (o.gate?.(req, res)) return;
    const up = http.get(`${MIRROR}${req.url ?? '/'}`, (r) => {
      o.answered?.(req.url ?? '/', r.statusCode ?? 502);
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
