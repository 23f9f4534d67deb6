import { authorizationFor, parseAuthConf } from './auth-conf';

const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;

test('parses entries, with comments and entries over several lines', () => {
  const e = parseAuthConf(
    [
      '# private mirror',
      'machine http://127.0.0.1:8080/repo login u1 password p1',
      'machine example.org/debian',
      '  login u2  # a comment',
      '  password p2',
      'machine broken.example login only',
    ].join('\n'),
  );
  expect(e).toEqual([
    {
      protocol: 'http',
      host: '127.0.0.1',
      port: '8080',
      path: 'repo',
      login: 'u1',
      password: 'p1',
    },
    { host: 'example.org', path: 'debian', login: 'u2', password: 'p2' },
  ]);
});

test('matches protocol, host, port and path prefix as apt does', () => {
  const e = parseAuthConf(
    'machine http://127.0.0.1:8080/repo login u1 password p1\nmachine example.org login u2 password p2',
  );
  expect(authorizationFor(e, 'http://127.0.0.1:8080/repo/dists/x/InRelease')).toBe(basic('u1:p1'));
  expect(authorizationFor(e, 'http://127.0.0.1:8080/repository/InRelease')).toBeUndefined();
  expect(authorizationFor(e, 'http://127.0.0.1:8081/repo/InRelease')).toBeUndefined();
  expect(authorizationFor(e, 'https://127.0.0.1:8080/repo/InRelease')).toBeUndefined();
  // Without a protocol, an entry is for https only.
  expect(authorizationFor(e, 'https://example.org/debian/InRelease')).toBe(basic('u2:p2'));
  expect(authorizationFor(e, 'http://example.org/debian/InRelease')).toBeUndefined();
  expect(authorizationFor(e, 'not a url')).toBeUndefined();
});
