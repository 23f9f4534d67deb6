/**
 * Fixtures for registry tests: a real CNCF distribution (`docker-registry`) on 127.0.0.1 with a
 * random port and a temp storage dir, in three set-ups (no auth; htpasswd + TLS with a CA made
 * here by openssl; token auth with a small JWT token service), plus a counting / throttling /
 * corrupting HTTP proxy. Every process started here is killed by `stop()`.
 */
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, createSign, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as path from 'node:path';
import { tmpDir as processTmpDir } from './support/processes';

export const REPO_ROOT = path.resolve(__dirname, '..');
/** The `strata` command as installed: the package's bin, which runs the built dist. */
export const CLI = path.join(REPO_ROOT, 'packages', 'cli', 'bin', 'strata.js');

export function haveTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/** A temp dir named `strata-<prefix>-…`, removed when the test file ends (see processes.ts). */
export function tmpDir(prefix: string): string {
  return processTmpDir(`strata-${prefix}-`);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Run the strata CLI (built dist) as `node CLI`. The environment is this process's, with CI=1
 * and `env` on top (undefined removes a variable).
 */
export function strata(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: string } = {},
): Promise<RunResult> {
  const env: Record<string, string | undefined> = { ...process.env, CI: '1', ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: env as NodeJS.ProcessEnv,
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code: code ?? (signal ? 137 : 1), stdout, stderr }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export async function strataOk(
  args: string[],
  opts: Parameters<typeof strata>[1] = {},
): Promise<RunResult> {
  const r = await strata(args, opts);
  if (r.code !== 0)
    throw new Error(`strata ${args.join(' ')} exited ${r.code}\n${r.stderr}${r.stdout}`);
  return r;
}

// ---- TLS material ------------------------------------------------------------------------

export interface Pki {
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A throwaway CA and a server certificate for 127.0.0.1 signed by it. */
export function makePki(dir: string): Pki {
  const p = (n: string): string => path.join(dir, n);
  sh('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=strata test CA',
  ]);
  sh('openssl', [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  fs.writeFileSync(
    p('ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  sh('openssl', [
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.crt'),
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
  ]);
  return { dir, caCert: p('ca.crt'), serverCert: p('server.crt'), serverKey: p('server.key') };
}

// ---- token service -----------------------------------------------------------------------

export interface TokenService {
  url: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Scopes asked for, in order. */
  requests: Array<{ scope: string[]; user?: string }>;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/**
 * A docker token service: checks basic credentials against `users`, and signs RS256 JWTs that
 * grant what was asked for (anonymous callers get nothing). The signing certificate goes into the
 * registry's `rootcertbundle`, and each token carries it in its `x5c` header.
 */
export async function startTokenService(
  dir: string,
  users: Record<string, string>,
): Promise<TokenService> {
  const key = path.join(dir, 'token.key');
  const cert = path.join(dir, 'token.crt');
  sh('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=strata token signer',
  ]);
  const der = Buffer.from(
    fs
      .readFileSync(cert, 'utf8')
      .replace(/-----[^-]+-----/g, '')
      .replace(/\s+/g, ''),
    'base64',
  );
  const privateKey = fs.readFileSync(key, 'utf8');
  const service = 'strata-test-registry';
  const issuer = 'strata-test-issuer';
  const requests: TokenService['requests'] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.getAll('scope');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (u === undefined || users[u] !== rest.join(':')) {
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
        return;
      }
      user = u;
    }
    requests.push({ scope, ...(user ? { user } : {}) });
    const access = user
      ? scope.map((s) => {
          const [type, ...rest] = s.split(':');
          const actions = (rest.pop() ?? '').split(',');
          return { type, name: rest.join(':'), actions };
        })
      : [];
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: user ?? '',
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(input).sign(privateKey);
    const token = `${input}.${b64url(sig)}`;
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ token, access_token: token, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile: cert,
    requests,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---- the registry ------------------------------------------------------------------------

export interface RegistryOptions {
  htpasswd?: Record<string, string>;
  tls?: Pki;
  token?: TokenService;
}

export interface Registry {
  host: string;
  port: number;
  dir: string;
  log(): string;
  stop(): Promise<void>;
}

/** Start docker-registry on 127.0.0.1:<free port>; resolves once /v2/ answers. */
export async function startRegistry(opts: RegistryOptions = {}): Promise<Registry> {
  const dir = tmpDir('registry');
  const port = await freePort();
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${path.join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  if (opts.tls) {
    lines.push(
      '  tls:',
      `    certificate: ${opts.tls.serverCert}`,
      `    key: ${opts.tls.serverKey}`,
    );
  }
  if (opts.htpasswd) {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(
      file,
      Object.entries(opts.htpasswd)
        .map(([u, p]) => sh('htpasswd', ['-Bbn', u, p]).trim())
        .join('\n') + '\n',
    );
    lines.push('auth:', '  htpasswd:', '    realm: strata-test', `    path: ${file}`);
  } else if (opts.token) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${opts.token.url}`,
      `    service: ${opts.token.service}`,
      `    issuer: ${opts.token.issuer}`,
      `    rootcertbundle: ${opts.token.certFile}`,
    );
  }
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(config, lines.join('\n') + '\n');
  const logFile = path.join(dir, 'registry.log');
  const out = fs.openSync(logFile, 'w');
  const child: ChildProcess = spawn('docker-registry', ['serve', config], {
    stdio: ['ignore', out, out],
    env: { ...process.env, OTEL_TRACES_EXPORTER: 'none' },
  });
  fs.closeSync(out);
  let exited = false;
  child.on('exit', () => (exited = true));
  const host = `127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (!exited) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited) throw new Error(`docker-registry exited:\n${fs.readFileSync(logFile, 'utf8')}`);
    const ok = await new Promise<boolean>((resolve) => {
      const mod = opts.tls ? https : http;
      const req = mod.get(
        `${opts.tls ? 'https' : 'http'}://${host}/v2/`,
        { rejectUnauthorized: false, timeout: 1000 },
        (res) => {
          res.resume();
          resolve(true);
        },
      );
      req.on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error('docker-registry did not come up');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host, port, dir, log: () => fs.readFileSync(logFile, 'utf8'), stop };
}

// ---- proxy -------------------------------------------------------------------------------

export interface ProxyRecord {
  method: string;
  url: string;
  range?: string;
  /** Request body bytes (what a client uploaded). */
  up: number;
  /** Response body bytes (what a client downloaded). */
  down: number;
  status: number;
}

export interface ProxyMode {
  /** Limit blob GET responses to about this many bytes per second. */
  throttle?: number;
  /** Flip a byte in blob GET responses. */
  corrupt?: boolean;
}

export interface Proxy {
  host: string;
  records: ProxyRecord[];
  mode: ProxyMode;
  /** Blob bytes sent to clients so far. */
  blobBytesDown(): number;
  /** Blob bytes clients uploaded (PATCH/PUT to blobs/uploads). */
  blobBytesUp(): number;
  stop(): Promise<void>;
}

/** A plain-http reverse proxy on 127.0.0.1 in front of a plain-http registry, counting bytes. */
export async function startProxy(target: string): Promise<Proxy> {
  const records: ProxyRecord[] = [];
  const mode: ProxyMode = {};
  const server = http.createServer((req, res) => {
    const rec: ProxyRecord = {
      method: req.method ?? '',
      url: req.url ?? '',
      up: 0,
      down: 0,
      status: 0,
    };
    if (req.headers.range) rec.range = String(req.headers.range);
    records.push(rec);
    const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(rec.url);
    const up = http.request(
      `http://${target}${req.url}`,
      { method: req.method, headers: req.headers },
      (ur) => {
        rec.status = ur.statusCode ?? 0;
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        let flipped = false;
        ur.on('data', (chunk: Buffer) => {
          let c = chunk;
          if (isBlobGet && mode.corrupt && !flipped && c.length > 0) {
            c = Buffer.from(c);
            c[0] = (c[0] ?? 0) ^ 0xff;
            flipped = true;
          }
          rec.down += c.length;
          const ok = res.write(c);
          if (isBlobGet && mode.throttle) {
            ur.pause();
            setTimeout(() => ur.resume(), Math.ceil((c.length / mode.throttle) * 1000));
          } else if (!ok) {
            ur.pause();
            res.once('drain', () => ur.resume());
          }
        });
        ur.on('end', () => res.end());
        ur.on('error', () => res.destroy());
      },
    );
    up.on('error', () => res.destroy());
    req.on('data', (c: Buffer) => (rec.up += c.length));
    req.pipe(up);
    res.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const isUpload = (r: ProxyRecord): boolean =>
    /\/blobs\/uploads\//.test(r.url) && (r.method === 'PUT' || r.method === 'PATCH');
  return {
    host: `127.0.0.1:${port}`,
    records,
    mode,
    blobBytesDown: () =>
      records
        .filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.url))
        .reduce((n, r) => n + r.down, 0),
    blobBytesUp: () => records.filter(isUpload).reduce((n, r) => n + r.up, 0),
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---- trees -------------------------------------------------------------------------------

/** A small synthetic rootfs: text files, a binary, a symlink, an executable, a big random file. */
export function makeTree(dir: string, bigBytes = 200_000): string {
  fs.mkdirSync(path.join(dir, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'usr', 'bin'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'usr', 'share', 'doc'), { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'etc', 'os-release'),
    'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
  );
  fs.writeFileSync(path.join(dir, 'usr', 'bin', 'hello'), '#!/bin/sh\necho hello\n', {
    mode: 0o755,
  });
  fs.chmodSync(path.join(dir, 'usr', 'bin', 'hello'), 0o755);
  fs.symlinkSync('hello', path.join(dir, 'usr', 'bin', 'hi'));
  fs.writeFileSync(path.join(dir, 'usr', 'share', 'doc', 'big.bin'), randomBytes(bigBytes));
  return dir;
}

/** path → "type mode size sha" for every entry under `root`, for tree equality. */
export function treeSummary(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${fs.readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        walk(r);
      } else {
        const h = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
        out[r] = `file ${mode} ${st.size} ${h}`;
      }
    }
  };
  walk('');
  return out;
}

export { sh };
