import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError, StrataError } from '@strata/oci';
import { openRepoFile, readIndexFile } from './fetch';

describe('readIndexFile over http', () => {
  let server: http.Server;
  let uri: string;
  let hops = 0;
  const seenAuth: Array<string | undefined> = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const url = req.url ?? '';
      if (url === '/debian/dists/bookworm/Release') {
        res.end('Date: Sat, 10 May 2025 08:47:33 UTC\n');
      } else if (url === '/debian/moved') {
        res.writeHead(302, { location: '/debian/dists/bookworm/Release' }).end();
      } else if (url === '/debian/loop') {
        hops++;
        res.writeHead(301, { location: '/debian/loop' }).end();
      } else if (url === '/debian/auth/Release' || url === '/debian/auth-moved') {
        if (req.headers.authorization !== 'Basic dTpw') {
          res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end();
        } else if (url === '/debian/auth-moved') {
          // Where the authorizer has no credentials for: none must follow.
          res.writeHead(302, { location: '/debian/seen' }).end();
        } else res.end('private Release\n');
      } else if (url === '/debian/seen') {
        seenAuth.push(req.headers.authorization);
        res.end('moved\n');
      } else if (url === '/debian/broken') {
        res.writeHead(500).end();
      } else {
        res.writeHead(url === '/debian/private' ? 403 : 404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/debian`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  test('reads a file, following redirects', async () => {
    expect((await readIndexFile(uri, 'dists/bookworm/Release'))?.toString()).toBe(
      'Date: Sat, 10 May 2025 08:47:33 UTC\n',
    );
    expect((await readIndexFile(uri, 'moved'))?.toString()).toMatch(/^Date:/);
  });

  test('credentials: sent where the authorizer says, a 401 says what is missing', async () => {
    const auth = (u: string) => (u.startsWith(`${uri}/auth`) ? 'Basic dTpw' : undefined);
    expect((await readIndexFile(uri, 'auth/Release', auth))?.toString()).toBe('private Release\n');
    await expect(readIndexFile(uri, 'auth/Release')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: `GET ${uri}/auth/Release: HTTP 401: the repository wants credentials`,
      hint: expect.stringContaining('--secret id=apt-auth'),
    });
    await expect(readIndexFile(uri, 'auth/Release', () => 'Basic wrong')).rejects.toThrow(
      'and refused the ones given',
    );
    expect((await readIndexFile(uri, 'auth-moved', auth))?.toString()).toBe('moved\n');
    expect(seenAuth).toEqual([undefined]);
  });

  test('openRepoFile streams a file, following redirects; a missing one is undefined', async () => {
    const body = await openRepoFile(uri, 'moved');
    const chunks: Buffer[] = [];
    for await (const c of body ?? []) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toMatch(/^Date:/);
    expect(await openRepoFile(uri, 'pool/absent.dsc')).toBeUndefined();
    await expect(openRepoFile(uri, 'broken')).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  test('a file the server does not have is absent, not an error', async () => {
    expect(await readIndexFile(uri, 'dists/trixie/InRelease')).toBeUndefined();
    expect(await readIndexFile(uri, 'private')).toBeUndefined();
  });

  test('a server error or endless redirects are UNAVAILABLE', async () => {
    await expect(readIndexFile(uri, 'broken')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: `GET ${uri}/broken: HTTP 500`,
    });
    const looped = readIndexFile(uri, 'loop');
    await expect(looped).rejects.toBeInstanceOf(StrataError);
    await expect(looped).rejects.toThrow('HTTP 301');
    expect(hops).toBe(6);
  });

  test('a refused connection is UNAVAILABLE', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(readIndexFile(`http://127.0.0.1:${port}`, 'Release')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });
});

test('readIndexFile reads file: URIs from disk, and refuses other schemes', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-fetch-'));
  try {
    fs.mkdirSync(path.join(dir, 'my repo'));
    fs.writeFileSync(path.join(dir, 'my repo', 'Packages'), 'Package: x\n');
    const uri = `file://${dir}/my%20repo`;
    expect((await readIndexFile(uri, 'Packages'))?.toString()).toBe('Package: x\n');
    expect((await readIndexFile(`file:${dir}/my%20repo`, 'Packages'))?.toString()).toBe(
      'Package: x\n',
    );
    expect(await readIndexFile(uri, 'Release')).toBeUndefined();
    const local = await openRepoFile(uri, 'Packages');
    const chunks: Buffer[] = [];
    for await (const c of local ?? []) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('Package: x\n');
    expect(await openRepoFile(uri, 'Release')).toBeUndefined();
    await expect(readIndexFile('ftp://ftp.example/debian', 'Release')).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
