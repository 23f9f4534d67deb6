/**
 * A private apt repository for the build-secret tests: one tiny package in a flat repository
 * (written by hand: dpkg-deb for the .deb, the Packages and Release files from its hashes),
 * served over plain http on 127.0.0.1 behind HTTP basic auth. Every request is recorded with
 * whether it carried the right credentials.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { startMirrorProxy } from './mirror-proxy';
import { runOk } from './processes';

export interface AuthRepo {
  url: string;
  /** `deb [trusted=yes] <url> ./` */
  sourcesLine: string;
  /** The package the repository holds, and the file it installs. */
  pkg: string;
  file: string;
  user: string;
  password: string;
  requests: Array<{ path: string; authorized: boolean }>;
  close(): Promise<void>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Build the repository in `dir` and serve it; `password` is what the test hides. */
export async function startAuthRepo(dir: string, password: string): Promise<AuthRepo> {
  const pkg = 'strata-private-demo';
  const file = `/usr/share/${pkg}/hello`;
  const tree = path.join(dir, 'pkgtree');
  fs.mkdirSync(path.join(tree, 'DEBIAN'), { recursive: true });
  fs.mkdirSync(path.join(tree, path.dirname(file)), { recursive: true });
  fs.writeFileSync(path.join(tree, file), 'hello from the private repository\n');
  fs.writeFileSync(
    path.join(tree, 'DEBIAN', 'control'),
    [
      `Package: ${pkg}`,
      'Version: 1.0',
      'Architecture: all',
      'Maintainer: Strata tests <tests@example.invalid>',
      'Description: a package only a private repository has',
      '',
    ].join('\n'),
  );
  const repo = path.join(dir, 'repo');
  fs.mkdirSync(repo, { recursive: true });
  const debName = `${pkg}_1.0_all.deb`;
  await runOk('dpkg-deb', ['--root-owner-group', '--build', tree, path.join(repo, debName)]);
  const deb = fs.readFileSync(path.join(repo, debName));
  const packages = Buffer.from(
    [
      `Package: ${pkg}`,
      'Version: 1.0',
      'Architecture: all',
      'Maintainer: Strata tests <tests@example.invalid>',
      `Filename: ./${debName}`,
      `Size: ${deb.length}`,
      `SHA256: ${sha256(deb)}`,
      'Description: a package only a private repository has',
      '',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(repo, 'Packages'), packages);
  fs.writeFileSync(
    path.join(repo, 'Release'),
    [
      'Date: Sat, 01 Jun 2024 00:00:00 UTC',
      'SHA256:',
      ` ${sha256(packages)} ${packages.length} Packages`,
      '',
    ].join('\n'),
  );

  const user = 'builder';
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const requests: AuthRepo['requests'] = [];
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const authorized = req.headers.authorization === expected;
    requests.push({ path: p, authorized });
    if (!authorized) {
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="private"' }).end();
      return;
    }
    const f = path.join(repo, path.normalize(p));
    if (!f.startsWith(repo + path.sep) || !fs.existsSync(f) || !fs.statSync(f).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Length': fs.statSync(f).size });
    fs.createReadStream(f).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    sourcesLine: `deb [trusted=yes] ${url}/ ./`,
    pkg,
    file,
    user,
    password,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export interface AuthMirror {
  /** `http://127.0.0.1:PORT`, standing for the mirror's `http://deb.debian.org`. */
  url: string;
  user: string;
  requests: Array<{ path: string; authorized: boolean }>;
  close(): Promise<void>;
}

/**
 * Debian's mirror behind HTTP basic auth, as a company's private mirror of it would be: a proxy
 * on 127.0.0.1 that answers 401 to a request without the credentials and passes the others on.
 */
export async function startAuthMirror(password: string): Promise<AuthMirror> {
  const user = 'mirror-reader';
  const expected = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  const requests: AuthMirror['requests'] = [];
  const proxy = await startMirrorProxy({
    gate: (req, res) => {
      const authorized = req.headers.authorization === expected;
      requests.push({ path: req.url ?? '/', authorized });
      if (!authorized)
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="private mirror"' }).end();
      return !authorized;
    },
  });
  return { ...proxy, user, requests };
}
